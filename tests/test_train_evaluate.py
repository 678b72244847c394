"""End to end on a tiny synthetic MNIST: train, checkpoint, resume, load, evaluate; CLI errors."""

import json
import sys

import pytest
import torch

import gcnn.train as train_module
from gcnn import load_model, model_from_config
from gcnn.checkpoint import save_model
from gcnn.evaluate import main as evaluate_main
from gcnn.machine import describe_device
from gcnn.models import count_parameters
from gcnn.train import TrainSettings, command_line, settings_from_command_line, train
from gcnn.train import main as train_main

TINY_GCNN = {"type": "GroupEquivariantCNN", "group": {"name": "cyclic", "order": 4}, "kernel_size": 3,
             "num_hidden": 1, "hidden_channels": 4, "padding": 1, "pool_after": [0]}


def settings(**overrides) -> TrainSettings:
    return TrainSettings(**{"model": TINY_GCNN, "epochs": 2, "batch_size": 64, "lr": 1e-2, "val_size": 100,
                            **overrides})


def test_train_writes_checkpoint_and_metadata(fake_mnist, tmp_path):
    metadata = train(settings(), "tiny", tmp_path, data_dir=fake_mnist, show_progress=False)
    assert (tmp_path / "tiny.pt").is_file() and (tmp_path / "tiny.json").is_file()
    assert not (tmp_path / "tiny.resume.pt").exists()  # removed once complete
    recorded = json.loads((tmp_path / "tiny.json").read_text())
    assert recorded["config"]["group"] == {"name": "cyclic", "order": 4}
    assert recorded["epochs_trained"] == 2 and len(recorded["history"]) == 2
    assert recorded["training"]["lr"] == 1e-2 and recorded["parameters"] == metadata["parameters"]
    assert {"test_upright", "test_rotated", "subset"} <= set(recorded["metrics"])
    assert recorded["history"][-1]["train_loss"] < recorded["history"][0]["train_loss"]  # it learns
    model = load_model(tmp_path / "tiny.pt")
    assert model(torch.rand(1, 1, 28, 28)).shape == (1, 10)


def test_resume_continues_where_it_stopped(fake_mnist, tmp_path, monkeypatch):
    """A run killed after epoch 1 and resumed ends exactly where an uninterrupted run does."""
    full = train(settings(), "full", tmp_path, data_dir=fake_mnist, show_progress=False)

    class Killed(Exception):
        pass

    save_state = train_module.save_torch

    def save_then_die(state, path):
        save_state(state, path)
        raise Killed

    monkeypatch.setattr(train_module, "save_torch", save_then_die)
    with pytest.raises(Killed):
        train(settings(), "run", tmp_path, data_dir=fake_mnist, show_progress=False)
    monkeypatch.undo()
    assert (tmp_path / "run.resume.pt").is_file() and not (tmp_path / "run.pt").exists()
    resumed = train(settings(), "run", tmp_path, data_dir=fake_mnist, resume=True, show_progress=False)
    assert resumed["history"] == full["history"]
    assert not (tmp_path / "run.resume.pt").exists()


def test_resume_refuses_other_settings(fake_mnist, tmp_path):
    from gcnn.checkpoint import CheckpointError, save_torch

    save_torch({"settings": "{}"}, tmp_path / "tiny.resume.pt")
    with pytest.raises(CheckpointError, match="saved with other settings"):
        train(settings(), "tiny", tmp_path, data_dir=fake_mnist, resume=True, show_progress=False)


def test_cli_train_and_evaluate(fake_mnist, tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(TINY_GCNN))
    assert train_main(["--config", str(config), "--name", "tiny", "--epochs", "1", "--out-dir", str(tmp_path),
                       "--data-dir", str(fake_mnist), "--no-progress"]) == 0
    out = tmp_path / "evaluation.json"
    assert evaluate_main([str(tmp_path / "tiny.pt"), "--data-dir", str(fake_mnist), "--curve-images", "50",
                          "--angle-step", "90", "--out", str(out)]) == 0
    results = json.loads(out.read_text())["models"]["tiny"]
    assert results["angles"] == [0, 90, 180, 270] and len(results["confusion"]) == 4
    assert sum(map(sum, results["confusion"][0])) == 50
    # a C4 GCNN is exactly invariant to quarter turns, so its accuracy is the same at 0, 90, 180, 270 degrees
    assert len(set(results["accuracy"])) == 1
    assert "tiny" in capsys.readouterr().out


def test_cli_reports_missing_dataset(tmp_path, capsys):
    assert train_main(["--preset", "cnn", "--data-dir", str(tmp_path / "nowhere"), "--out-dir", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert "MNIST was not found in" in error and "nowhere" in error
    assert "--data-dir" in error and "GCNN_DATA_DIR" in error and "--download" in error


def test_cli_reports_bad_checkpoint(fake_mnist, tmp_path, capsys):
    (tmp_path / "broken.pt").write_bytes(b"")
    assert evaluate_main([str(tmp_path / "broken.pt"), "--data-dir", str(fake_mnist)]) == 1
    assert "broken.json: metadata file not found" in capsys.readouterr().err


def assert_same_training(fake_mnist, tmp_path, option: str) -> None:
    """One epoch with ``train(..., option=False)`` and one with ``option=True``: same losses and weights up to
    float rounding."""
    runs = {}
    for enabled in (False, True):
        torch._dynamo.reset()
        metadata = train(settings(epochs=1), f"tiny{enabled}", tmp_path, data_dir=fake_mnist, show_progress=False,
                         **{option: enabled})
        runs[enabled] = (metadata["history"][0]["train_loss"], load_model(tmp_path / f"tiny{enabled}.pt"))
    assert runs[True][0] == pytest.approx(runs[False][0], rel=1e-3)
    for without, with_option in zip(runs[False][1].parameters(), runs[True][1].parameters(), strict=True):
        assert torch.allclose(without, with_option, rtol=1e-3, atol=1e-4)


def test_compiled_training_matches_eager(fake_mnist, tmp_path):
    """--compile runs the same steps through torch.compile."""
    assert_same_training(fake_mnist, tmp_path, "compile_model")


def test_channels_last_training_matches_the_default_layout(fake_mnist, tmp_path):
    """--channels-last changes the layout only."""
    assert_same_training(fake_mnist, tmp_path, "channels_last")
    with pytest.raises(ValueError, match="GroupEquivariantCNN"):
        train(settings(model={"type": "BaselineCNN", "hidden_channels": 4, "num_hidden": 1}), "cnn", tmp_path,
              data_dir=fake_mnist, show_progress=False, channels_last=True)


def test_augmented_training_records_its_strengths(fake_mnist, tmp_path):
    """Rotation-free augmentation, the pen's redrawing included (and the baseline's rotations), run in the training
    loop and land in NAME.json; the same seed gives the same run."""
    augment = {"translate": 1.0, "scale": [0.9, 1.1], "elastic": 0.5, "thickness": 0.5, "low_resolution": 0.2,
               "blur": 0.5, "pen": 0.5}
    chosen = settings(epochs=1, augment=augment, augment_rotation=True)
    first = train(chosen, "aug", tmp_path, data_dir=fake_mnist, show_progress=False)
    recorded = json.loads((tmp_path / "aug.json").read_text())
    assert recorded["training"]["augment"] == augment and recorded["training"]["augment_rotation"] is True
    assert recorded["device"] == describe_device(torch.device("cpu")) and recorded["epochs_trained"] == 1
    assert recorded["run"]["total_wall_time_s"] >= recorded["wall_time_s"] > 0
    assert recorded["run"]["amp"] is False and recorded["run"]["tf32"] is True
    again = train(chosen, "aug2", tmp_path, data_dir=fake_mnist, show_progress=False)
    assert again["history"] == first["history"]
    plain = train(settings(epochs=1), "plain", tmp_path, data_dir=fake_mnist, show_progress=False)
    assert plain["history"][0]["train_loss"] != first["history"][0]["train_loss"]


def test_rotations_about_the_mass_centre_are_a_setting_of_their_own(fake_mnist, tmp_path):
    """--rotation-centre mass reaches the training loop (another run than the image centre's), NAME.json records it,
    the shortest command that trains it names it where its preset does not (the rotation presets turn about the
    mass centre), and a record written before the setting existed reads as the image centre, which is what those
    runs used."""
    preset_settings, name = settings_from_command_line(["--preset", "cnn_rotaug"])
    assert preset_settings.rotation_centre == "mass" and "--rotation-centre" not in command_line(preset_settings, name)
    chosen, name = settings_from_command_line(["--preset", "cnn_rotaug", "--rotation-centre", "image"])
    assert chosen.rotation_centre == "image" and "--rotation-centre image" in command_line(chosen, name)
    assert settings_from_command_line(["--preset", "cnn", "--augment-rotation"])[0].rotation_centre == "image"
    about_mass = train(settings(epochs=1, augment_rotation=True, rotation_centre="mass"), "mass", tmp_path,
                       data_dir=fake_mnist, show_progress=False)
    about_image = train(settings(epochs=1, augment_rotation=True), "image", tmp_path, data_dir=fake_mnist,
                        show_progress=False)
    assert about_mass["history"][0]["train_loss"] != about_image["history"][0]["train_loss"]
    recorded = json.loads((tmp_path / "mass.json").read_text())
    assert recorded["training"]["rotation_centre"] == "mass"
    del recorded["training"]["rotation_centre"]
    assert TrainSettings.from_metadata(recorded).rotation_centre == "image"
    with pytest.raises(ValueError, match="rotation_centre must be one of image, mass"):
        settings(rotation_centre="middle").check()


def test_amp_training_learns_and_keeps_float32_weights(fake_mnist, tmp_path):
    metadata = train(settings(), "amp", tmp_path, data_dir=fake_mnist, show_progress=False, amp=True)
    assert metadata["run"]["amp"] is True
    assert metadata["history"][-1]["train_loss"] < metadata["history"][0]["train_loss"]
    assert all(p.dtype == torch.float32 for p in load_model(tmp_path / "amp.pt").parameters())


def test_device_accuracy_matches_the_evaluation_module(fake_mnist):
    from gcnn.data import load_mnist
    from gcnn.evaluate import accuracy
    from gcnn.models import model_from_config
    from gcnn.train import device_accuracy

    torch.manual_seed(0)
    model = model_from_config(TINY_GCNN)
    images, labels = load_mnist(train=False, data_dir=fake_mnist)
    assert device_accuracy(model, images, labels, batch_size=64) == pytest.approx(accuracy(model, images, labels))


def refused(main, arguments: list[str], capsys) -> str:
    """Run a command's ``main``, expect argparse's refusal (exit code 2), and return its one-line message."""
    with pytest.raises(SystemExit) as exit_info:
        main(arguments)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    return error.strip().splitlines()[-1]  # argparse: the usage, then "prog: error: message" on one line


@pytest.mark.parametrize("option, message", [
    ("--epochs 0", "argument --epochs: must be at least 1, got 0"),
    ("--batch-size -1", "argument --batch-size: must be at least 1"),
    ("--lr inf", "argument --lr: must be a finite number above 0, got inf"),
    ("--lr nan", "argument --lr: must be a finite number above 0, got nan"),
    ("--weight-decay -1", "argument --weight-decay: must be a finite number of at least 0"),
    ("--seed -1", "argument --seed: must be a whole number from 0 to 2**63 - 1"),
    ("--train-limit 0", "argument --train-limit: must be at least 1"),
    ("--device bogus", "argument --device: device 'bogus' is not available on this machine"),
    ("--device cuda:99", "argument --device: device 'cuda:99' is not available on this machine"),
    ("--name a/b", "the name 'a/b' must be a file name, without a folder"),
    ('--augment {"rotation":1}', "unknown augmentation settings"),
    ('--augment {"scale":5}', "scale must be (low, high)"),
    ("--augment [1]", "augmentation settings must be a dict"),
    ("--rotation-centre middle", "argument --rotation-centre: invalid choice: 'middle'"),
], ids=lambda value: value if value.startswith("--") else "")
def test_cli_refuses_unusable_settings_clearly(fake_mnist, tmp_path, capsys, option, message):
    """Nonsense on the command line ends in one line and exit code 2, before any work (no traceback, no run at
    chance accuracy as --lr inf gave)."""
    line = refused(train_main, ["--preset", "cnn", "--data-dir", str(fake_mnist), "--out-dir", str(tmp_path),
                                *option.split(" ")], capsys)
    assert message in line and line.startswith("python -m gcnn.train: error:")
    assert not list(tmp_path.iterdir())  # refused before any work


@pytest.mark.parametrize("config, message", [
    ({"type": "BaselineCNN", "num_hidden": 8}, "the model cannot take 28x28 images: Calculated padded input size"),
    ({**TINY_GCNN, "group": {"name": "cyclic", "order": 2.5}}, "CyclicGroup order must be a positive integer"),
    ({"type": "GroupEquivariantCNN"}, "bad GroupEquivariantCNN config: it has no 'group'"),
    ({**TINY_GCNN, "num_hidden": -1}, "num_hidden must be a whole number of at least 0"),
    ({**TINY_GCNN, "out_channels": 3}, "MNIST has 1 channel and 10 classes"),
    ([1, 2], "--config must hold a JSON object"),
], ids=["too deep for 28x28", "order 2.5", "no group", "num_hidden -1", "3 classes", "a list"])
def test_cli_refuses_models_that_cannot_train_on_mnist(fake_mnist, tmp_path, capsys, config, message):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "out"
    line = refused(train_main, ["--config", str(path), "--name", "x", "--data-dir", str(fake_mnist), "--out-dir",
                                str(out)], capsys)
    assert message in line and not out.exists()


def test_cli_refuses_an_out_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert "argument --out-dir: " in refused(train_main, ["--preset", "cnn", "--out-dir", str(tmp_path / "file")],
                                             capsys)
    assert "file is a file, not a folder" in refused(
        train_main, ["--preset", "cnn", "--out-dir", str(tmp_path / "file" / "below")], capsys)


def test_training_never_replaces_a_checkpoint_unasked(fake_mnist, tmp_path, capsys):
    """A second run of the same name is refused before any work (it used to replace the checkpoint: a cnn at
    98.8% became one at 10.1%); --force replaces it, --name writes another."""
    arguments = ["--config", json.dumps(TINY_GCNN), "--name", "tiny", "--epochs", "1", "--out-dir", str(tmp_path),
                 "--data-dir", str(fake_mnist), "--no-progress", "--train-limit", "64"]
    assert train_main(arguments) == 0
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    line = refused(train_main, arguments, capsys)
    assert f"{tmp_path / 'tiny.pt'} and {tmp_path / 'tiny.json'} already exist" in line and "--force" in line
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before
    with pytest.raises(FileExistsError, match="overwrite=True"):
        train(settings(epochs=1), "tiny", tmp_path, data_dir=fake_mnist, show_progress=False)
    assert train_main([*arguments, "--seed", "1", "--force"]) == 0
    assert (tmp_path / "tiny.pt").read_bytes() != before["tiny.pt"]
    assert train_main([*arguments, "--name", "other"]) == 0 and (tmp_path / "other.pt").is_file()


def test_the_default_output_folder_is_models_under_the_current_directory(fake_mnist, tmp_path, monkeypatch):
    """Never the source checkout's models/ (which is where models_dir() finds the shipped ones from elsewhere)."""
    monkeypatch.delenv("GCNN_MODELS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    train(settings(epochs=1, train_limit=64), "tiny", data_dir=fake_mnist, show_progress=False)
    assert (tmp_path / "models" / "tiny.pt").is_file()
    monkeypatch.setenv("GCNN_MODELS_DIR", str(tmp_path / "elsewhere"))
    train(settings(epochs=1, train_limit=64), "tiny", data_dir=fake_mnist, show_progress=False)
    assert (tmp_path / "elsewhere" / "tiny.pt").is_file()


def test_a_loss_that_stops_being_finite_stops_training(fake_mnist, tmp_path, capsys):
    assert train_main(["--config", json.dumps(TINY_GCNN), "--name", "tiny", "--epochs", "2", "--lr", "1e30",
                       "--out-dir", str(tmp_path), "--data-dir", str(fake_mnist), "--no-progress"]) == 1
    error = capsys.readouterr().err
    assert "error: tiny: the training loss was nan in epoch 1, so training stopped" in error
    assert "--lr, now 1e+30" in error and "Traceback" not in error
    assert not (tmp_path / "tiny.pt").exists() and not (tmp_path / "tiny.resume.pt").exists()


def test_a_missing_extra_is_named_with_its_install_command(fake_mnist, tmp_path, monkeypatch, capsys):
    """Installed with torch alone: the progress bar (tqdm) and MNIST reading (torchvision) name the train extra."""
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` now fails as if it were not installed
    assert train_main(["--config", json.dumps(TINY_GCNN), "--name", "tiny", "--out-dir", str(tmp_path),
                       "--data-dir", str(fake_mnist)]) == 1
    error = capsys.readouterr().err
    assert "the training progress bar (--no-progress does without) needs tqdm, which is not installed" in error
    assert 'pip install "gcnn[train]"' in error and "Traceback" not in error
    for name in [name for name in sys.modules if name.split(".")[0] == "torchvision"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "torchvision", None)
    save_model(model_from_config(TINY_GCNN), tmp_path / "tiny")
    assert evaluate_main([str(tmp_path / "tiny.pt"), "--data-dir", str(fake_mnist), "--out",
                          str(tmp_path / "e.json")]) == 1
    error = capsys.readouterr().err
    assert "reading MNIST needs torchvision, which is not installed" in error and '"gcnn[train]"' in error


@pytest.mark.parametrize("option, message", [
    ("--angle-step 0", "argument --angle-step: must be at least 1, got 0"),
    ("--curve-images -1", "argument --curve-images: must be at least 1, got -1"),
    ("--out {tmp}/corrupt.json", "corrupt.json is there but is not a readable JSON file"),
    ("--out {tmp}/list.json", "list.json is JSON but not a gcnn.evaluate results file"),
    ("--out {tmp}/file/evaluation.json", "cannot be made: {tmp}/file is a file, not a folder"),
    ("--out {tmp}", "is a folder; name a file in it"),
    ("--models-dir {tmp}/file", "argument --models-dir: {tmp}/file is not a folder"),
], ids=lambda value: value.split(" {")[0] if value.startswith("--") else "")
def test_evaluate_refuses_unusable_arguments_before_the_evaluation(fake_mnist, tmp_path, capsys, option, message):
    """A results file that cannot be merged into or written is found before the long evaluation, not after it."""
    (tmp_path / "corrupt.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1]")
    (tmp_path / "file").write_text("")
    save_model(model_from_config(TINY_GCNN), tmp_path / "tiny")
    line = refused(evaluate_main, [str(tmp_path / "tiny.pt"), "--data-dir", str(fake_mnist),
                                   *option.format(tmp=tmp_path).split(" ")], capsys)
    assert message.format(tmp=tmp_path) in line and line.startswith("python -m gcnn.evaluate: error:")
    assert (tmp_path / "corrupt.json").read_text() == "{not json"


def test_presets_share_one_rotation_free_augmentation():
    from gcnn.augment import Augmentation
    from gcnn.presets import AUGMENT, PRESETS

    for name, chosen in PRESETS.items():
        assert chosen["augment"] == AUGMENT, name
        assert chosen.get("augment_rotation", False) == name.startswith("cnn_rotaug"), name
        assert chosen.get("epochs", 10) >= 10, name
        TrainSettings(**chosen).check()
    Augmentation.from_dict(AUGMENT)
    assert PRESETS["cnn_rotaug_tta"]["model"] == {**PRESETS["cnn_rotaug"]["model"], "input_rotations": 8}
    # gcnn_best: C16 with band-limited kernels and anti-aliased pooling, no more parameters than the baselines.
    best = model_from_config(PRESETS["gcnn_best"]["model"])
    assert best.basis.config()["name"] == "harmonic" and best.antialias and best.group.order == 16
    assert count_parameters(best) <= 1.05 * count_parameters(model_from_config(PRESETS["cnn"]["model"]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_on_cuda_with_amp(fake_mnist, tmp_path):
    """The device-resident pipeline on a GPU: data, augmentation, metrics there; checkpoint loads on the CPU."""
    from gcnn.presets import AUGMENT

    metadata = train(settings(augment=AUGMENT, augment_rotation=True), "gpu", tmp_path, data_dir=fake_mnist,
                     show_progress=False, device="cuda", amp=True)
    assert metadata["device"] == torch.cuda.get_device_name()
    assert metadata["history"][-1]["train_loss"] < metadata["history"][0]["train_loss"]
    assert load_model(tmp_path / "gpu.pt")(torch.rand(1, 1, 28, 28)).shape == (1, 10)
