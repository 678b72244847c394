"""Checkpoints round-trip, and every kind of bad file gives an error naming the file and the problem."""

import json
import os
import pickle

import pytest
import torch

from gcnn import BaselineCNN, CyclicGroup, GroupEquivariantCNN
from gcnn.checkpoint import CheckpointError, atomic_write, load_model, save_model


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = GroupEquivariantCNN(CyclicGroup(4), kernel_size=3, num_hidden=1, hidden_channels=3)
    pt, js = save_model(model, tmp_path / "model", {"parameters": 1})
    return model, pt, js


def test_round_trip_from_any_name(saved):
    model, pt, js = saved
    x = torch.rand(2, 1, 28, 28)
    model.eval()
    for path in (pt, js, pt.with_suffix("")):
        loaded = load_model(path)
        assert not loaded.training
        assert torch.equal(loaded(x), model(x))


def test_missing_files(saved, tmp_path):
    _, pt, js = saved
    with pytest.raises(CheckpointError, match=r"nothing: no checkpoint there \(neither nothing\.pt nor nothing\.json"):
        load_model(tmp_path / "nothing.pt")
    (tmp_path / "nothing.pt").write_bytes(pt.read_bytes())  # the weights without their metadata
    with pytest.raises(CheckpointError, match=r"nothing\.json: metadata file not found"):
        load_model(tmp_path / "nothing.pt")
    pt.unlink()
    with pytest.raises(CheckpointError, match=r"model\.pt: file not found"):
        load_model(js)


def test_empty_file(saved):
    _, pt, _ = saved
    pt.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"model\.pt: the file is empty"):
        load_model(pt)


def test_truncated_file(saved):
    _, pt, _ = saved
    pt.write_bytes(pt.read_bytes()[: pt.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"model\.pt: not a readable checkpoint"):
        load_model(pt)


class Payload:
    """Anything that is not plain weights; must never be unpickled."""

    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def test_pickle_that_is_not_weights(saved):
    _, pt, _ = saved
    pt.write_bytes(pickle.dumps({"weight": Payload()}, protocol=2))
    with pytest.raises(CheckpointError, match=r"model\.pt: holds objects other than tensors"):
        load_model(pt)


def test_torch_save_of_a_whole_module_is_refused(saved):
    _, pt, _ = saved
    torch.save(BaselineCNN(kernel_size=3, num_hidden=1), pt)
    with pytest.raises(CheckpointError, match=r"model\.pt: holds objects other than tensors"):
        load_model(pt)


def test_wrong_shapes(saved, tmp_path):
    _, pt, _ = saved
    other = GroupEquivariantCNN(CyclicGroup(4), kernel_size=3, num_hidden=1, hidden_channels=5)
    torch.save(other.state_dict(), pt)
    with pytest.raises(CheckpointError, match=r"model\.pt: does not fit the model described in model\.json"):
        load_model(pt)


def test_not_a_state_dict(saved):
    _, pt, _ = saved
    torch.save([torch.zeros(1)], pt)
    with pytest.raises(CheckpointError, match="is not a state dict"):
        load_model(pt)


def test_bad_metadata(saved):
    _, pt, js = saved
    metadata = json.loads(js.read_text())
    js.write_text(json.dumps({**metadata, "config": {**metadata["config"], "type": "VisionTransformer"}}))
    with pytest.raises(CheckpointError, match=r"model\.json: cannot build the model: unknown model type"):
        load_model(pt)
    js.write_text(json.dumps({**metadata, "format_version": 99}))
    with pytest.raises(CheckpointError, match=r"format_version 99 is not supported.*upgrade gcnn"):
        load_model(pt)
    js.write_text("{not json")
    with pytest.raises(CheckpointError, match=r"model\.json: not valid JSON"):
        load_model(pt)
    js.write_text(json.dumps({"format_version": 1}))
    with pytest.raises(CheckpointError, match="has no model 'config'"):
        load_model(pt)


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]  # the temporary file was removed


def test_unavailable_device_is_named_not_blamed_on_the_file(saved):
    _, pt, _ = saved
    # Without a GPU "cuda" is missing; with one, an ordinal past the last GPU is.
    device = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    with pytest.raises(RuntimeError, match=rf"device '{device}' is not available on this machine") as error:
        load_model(pt, map_location=device)
    assert not isinstance(error.value, CheckpointError)
    assert load_model(pt, map_location=torch.device("cpu")).final_linear.weight.device.type == "cpu"


def test_a_bare_name_is_found_in_the_models_folder(saved, tmp_path, monkeypatch):
    """load_model("gcnn_best") finds a shipped model from anywhere; when it finds nothing it says where it looked
    and how the models folder is chosen (it used to say only "gcnn_best.json: metadata file not found")."""
    model, _, _ = saved
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("GCNN_MODELS_DIR", str(tmp_path))
    x = torch.rand(1, 1, 28, 28)
    assert torch.equal(load_model("model")(x), model.eval()(x)) and torch.equal(load_model("model.pt")(x), model(x))
    with pytest.raises(CheckpointError, match=rf"nope: no nope.pt / nope.json in the current directory \(.*elsewhere\) "
                                              rf"or in the models folder {tmp_path} \(gcnn.folders.models_dir\(\): "
                                              r"\$GCNN_MODELS_DIR"):
        load_model("nope")
    with pytest.raises(CheckpointError, match="nope: no checkpoint there"):
        load_model(tmp_path / "nope")  # a path is taken as it is
