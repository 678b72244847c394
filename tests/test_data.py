"""Data loading, splits and the rotated test protocol (real MNIST where GCNN_DATA_DIR has it)."""

import pytest
import torch

from gcnn.data import (
    DatasetMissingError,
    load_mnist,
    resolve_data_dir,
    rotate,
    rotated_test_set,
    rotation_angles,
    train_val_split,
)


def test_real_mnist_sizes_and_split(real_mnist):
    images, labels = load_mnist(train=True, data_dir=real_mnist)
    assert images.shape == (60_000, 1, 28, 28) and labels.shape == (60_000,)
    assert images.dtype == torch.float32 and 0 <= images.min() and images.max() == 1
    train_idx, val_idx = train_val_split(len(images))
    assert len(train_idx) == 55_000 and len(val_idx) == 5_000
    assert len(set(train_idx.tolist()) & set(val_idx.tolist())) == 0
    assert len(set(train_idx.tolist()) | set(val_idx.tolist())) == 60_000
    # every class is in the validation split in roughly its share
    assert torch.bincount(labels[val_idx], minlength=10).min() > 350
    test_images, test_labels = load_mnist(train=False, data_dir=real_mnist)
    assert test_images.shape == (10_000, 1, 28, 28) and test_labels[:3].tolist() == [7, 2, 1]


def test_split_is_deterministic():
    first, second = train_val_split(1000, 100), train_val_split(1000, 100)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not torch.equal(train_val_split(1000, 100, seed=1)[1], first[1])


def test_rotation_seeding_is_deterministic(real_mnist):
    images, _ = load_mnist(train=False, data_dir=real_mnist)
    subset = images[:300]
    first, angles = rotated_test_set(subset)
    second, angles_again = rotated_test_set(subset)
    assert torch.equal(first, second) and torch.equal(angles, angles_again)
    assert angles.min() >= 0 and angles.max() < 360 and angles.std() > 80  # spread over the circle
    assert not torch.equal(rotation_angles(300, seed=1), angles)
    # each image is rotated by its own angle
    assert torch.allclose(first[5], rotate(subset[5:6], angles[5])[0])


def test_rotate_matches_rot90_and_turns_counter_clockwise():
    image = torch.rand(2, 1, 28, 28)
    assert torch.equal(rotate(image, 90.0), torch.rot90(image, 1, dims=(-2, -1)))
    dot = torch.zeros(1, 1, 28, 28)
    dot[0, 0, 14, 24] = 1  # right of centre
    assert rotate(dot, 90.0)[0, 0].argmax() // 28 < 14  # moves up


def test_rotate_checks_angle_count():
    with pytest.raises(ValueError, match="3 angles for 2 images"):
        rotate(torch.zeros(2, 1, 4, 4), torch.zeros(3))


def test_missing_dataset_message(tmp_path, monkeypatch):
    monkeypatch.delenv("GCNN_DATA_DIR", raising=False)
    with pytest.raises(DatasetMissingError) as caught:
        load_mnist(train=False, data_dir=tmp_path / "empty")
    message = str(caught.value)
    assert str(tmp_path / "empty" / "MNIST" / "raw") in message
    assert "--data-dir" in message and "GCNN_DATA_DIR" in message
    assert caught.value.folder == (tmp_path / "empty" / "MNIST" / "raw").resolve()


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("GCNN_DATA_DIR", str(tmp_path))
    assert resolve_data_dir("flag") == resolve_data_dir("flag") and str(resolve_data_dir("flag")) == "flag"
    assert resolve_data_dir() == tmp_path
    monkeypatch.delenv("GCNN_DATA_DIR")
    assert str(resolve_data_dir()) == "data"


def test_importing_the_library_does_not_import_torchvision():
    """torchvision is loaded on first use of MNIST or the test rotation, so the core needs torch only."""
    import subprocess
    import sys

    code = "import sys, gcnn, gcnn.data, gcnn.train, gcnn.augment; print('torchvision' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
