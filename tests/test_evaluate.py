"""python -m gcnn.evaluate on a models folder given by path; evaluation helpers leave the model's mode alone."""

import json
import shutil

import torch

from gcnn import CyclicGroup, GroupEquivariantCNN
from gcnn.checkpoint import save_torch
from gcnn.evaluate import accuracy, find_checkpoints, main, predict_logits
from gcnn.shipped import SHIPPED


def test_evaluate_a_models_folder_with_an_interrupted_run_in_it(tiny_models_dir, fake_mnist, tmp_path, capsys):
    folder = tmp_path / "runs"
    shutil.copytree(tiny_models_dir, folder)
    save_torch({"epoch": 1}, folder / "cnn.resume.pt")  # what an interrupted `python -m gcnn.train` leaves
    assert [p.stem for p in find_checkpoints(folder)] == sorted(SHIPPED)
    assert main(["--models-dir", str(folder), "--data-dir", str(fake_mnist), "--curve-images", "20",
                 "--angle-step", "90"]) == 0
    results = json.loads((folder / "evaluation.json").read_text())["models"]
    assert sorted(results) == sorted(SHIPPED)
    assert all(results[name]["angles"] == [0, 90, 180, 270] for name in results)
    assert "cnn.resume" not in capsys.readouterr().out


def test_evaluate_an_empty_folder_says_which(tmp_path, fake_mnist, capsys):
    assert main(["--models-dir", str(tmp_path), "--data-dir", str(fake_mnist)]) == 1
    assert f"none found in {tmp_path}" in capsys.readouterr().err


def test_helpers_restore_the_callers_mode():
    model = GroupEquivariantCNN(CyclicGroup(4), kernel_size=3, num_hidden=1, hidden_channels=3, norm="batch")
    images, labels = torch.rand(6, 1, 28, 28), torch.zeros(6, dtype=torch.long)
    statistics = model.blocks[0][1].running_mean.clone()
    logits = predict_logits(model.train(), images, batch_size=4)
    assert model.training and logits.shape == (6, 10)
    assert torch.equal(model.blocks[0][1].running_mean, statistics)  # evaluated in eval mode all the same
    assert 0 <= accuracy(model, images, labels) <= 1 and model.training
    model.eval()
    assert torch.allclose(predict_logits(model, images), logits) and not model.training
