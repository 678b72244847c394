"""The checkpoints committed in models/: they load, stay accurate, stay equivariant, and stay small."""

import json
import shlex
from dataclasses import asdict

import pytest
import torch

from gcnn import BaselineCNN, GroupEquivariantCNN, load_model, model_from_config
from gcnn.data import load_mnist, rotated_test_set
from gcnn.evaluate import accuracy, curve_subset
from gcnn.shipped import SHIPPED, evaluation_file, load_evaluation, load_shipped, models_dir, train_command

TOLERANCE = 0.003  # re-measured accuracy on the 1,000-image subset vs the value recorded at training time
MODELS_DIR = models_dir()


def test_models_folder_is_the_checkouts():
    assert {f"{name}.pt" for name in SHIPPED} <= {p.name for p in MODELS_DIR.iterdir()}


@pytest.mark.parametrize("name", SHIPPED)
def test_checkpoint_loads_and_is_small(name):
    path = MODELS_DIR / name
    pt, js = path.with_suffix(".pt"), path.with_suffix(".json")
    assert pt.stat().st_size < 5 * 2**20 and js.stat().st_size < 2**20
    model = load_model(pt)
    metadata = json.loads(js.read_text())
    assert sum(p.numel() for p in model.parameters()) == metadata["parameters"]
    # the shipped interface: [B, 1, 28, 28] floats in [0, 1] -> logits [B, 10]
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_invariance_per_element(name):
    """GCNNs: exact under their pixel-exact elements, measurably approximate under the others (gcnn_best: the
    12 C16 elements that are not quarter turns).  cnn_rotaug_tta: exact under quarter turns."""
    model = load_model(MODELS_DIR / name)
    results = model.check_equivariance(angles=[90, 180, 270])
    if isinstance(model, BaselineCNN) and model.input_rotations == 1:
        assert min(r.error for r in results if r.element is None) > 1e-2  # a plain CNN is not invariant
        return
    if isinstance(model, GroupEquivariantCNN):
        assert [r.element for r in results[:-3]] == list(range(model.group.order))
    exact = [r.error for r in results if r.exact]
    interpolated = [r.error for r in results if not r.exact]
    assert len(exact) >= 4 and max(exact) < 1e-5
    assert all(1e-4 < error < 1 for error in interpolated)


@pytest.fixture(scope="module")
def test_subset(real_mnist):
    images, labels = load_mnist(train=False, data_dir=real_mnist)
    rotated, _ = rotated_test_set(images)
    subset = curve_subset(len(images), 1_000)
    return images[subset], rotated[subset], labels[subset]


@pytest.mark.parametrize("name", SHIPPED)
def test_accuracy_matches_what_was_recorded(name, test_subset):
    images, rotated, labels = test_subset
    path = MODELS_DIR / name
    model = load_model(path)
    recorded = json.loads(path.with_suffix(".json").read_text())["metrics"]["subset"]
    assert recorded["size"] == 1_000
    assert accuracy(model, images, labels) == pytest.approx(recorded["upright"], abs=TOLERANCE)
    assert accuracy(model, rotated, labels) == pytest.approx(recorded["rotated"], abs=TOLERANCE)


def test_evaluation_file_covers_every_shipped_model():
    results = load_evaluation(evaluation_file(MODELS_DIR))
    assert results is not None, "run python -m gcnn.evaluate"
    for name in SHIPPED:
        entry = results["models"][name]
        assert entry["angles"] == list(range(0, 360, 5))
        assert len(entry["accuracy"]) == len(entry["confusion"]) == 72
        assert entry["worst_accuracy"] == min(entry["accuracy"])
        assert 0 <= entry["rotated"] <= entry["upright"] + 0.02


def test_models_folder_resolution(tmp_path, monkeypatch):
    """An explicit path, else $GCNN_MODELS_DIR, else ./models, else the checkout's models/ (a checkout runs here)."""
    monkeypatch.delenv("GCNN_MODELS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    checkout = models_dir()
    assert (checkout / "gcnn_c4.pt").is_file() and checkout.parent.joinpath("pyproject.toml").is_file()
    (tmp_path / "models").mkdir()
    assert models_dir().resolve() == (tmp_path / "models").resolve()
    monkeypatch.setenv("GCNN_MODELS_DIR", str(tmp_path / "elsewhere"))
    assert models_dir() == tmp_path / "elsewhere"
    assert models_dir(tmp_path / "given") == tmp_path / "given"
    assert evaluation_file() == tmp_path / "elsewhere" / "evaluation.json"


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_is_its_preset(name):
    """What the app shows is what `python -m gcnn.train --preset NAME` trains: the model config and every
    training setting (seed 0), with nothing derived from another checkpoint."""
    from gcnn.presets import preset
    from gcnn.train import TrainSettings

    metadata = json.loads((MODELS_DIR / name).with_suffix(".json").read_text())
    recorded = TrainSettings.from_metadata(metadata)
    expected = TrainSettings(**preset(name))
    assert model_from_config(recorded.model).config() == model_from_config(expected.model).config()
    assert asdict(recorded) | {"model": None} == asdict(expected) | {"model": None}
    assert "derived_from" not in metadata and metadata["epochs_trained"] == expected.epochs


@pytest.mark.parametrize("name", SHIPPED)
def test_the_recreate_command_trains_what_was_shipped(name):
    """The hint for a missing or broken shipped model trains what shipped (today `--preset NAME`, since every
    checkpoint is its preset's; derived from the checkpoint's record, so it stays right if one ever is not)."""
    from gcnn.train import TrainSettings, settings_from_command_line

    path = MODELS_DIR / name
    recorded = TrainSettings.from_metadata(json.loads(path.with_suffix(".json").read_text()))
    command = train_command(name, MODELS_DIR)
    arguments = shlex.split(command.split(" && ")[0])
    assert arguments[:3] == ["python", "-m", "gcnn.train"] and "--force" in arguments  # the files are there
    settings, trained_name = settings_from_command_line(arguments[3:])
    assert trained_name == name
    assert model_from_config(settings.model).config() == model_from_config(recorded.model).config()
    assert asdict(settings) | {"model": None} == asdict(recorded) | {"model": None}
    assert command.endswith("python -m gcnn.evaluate")


def test_the_recreate_command_is_the_preset_once_the_checkpoint_is_the_presets(tmp_path, monkeypatch):
    """When another engineer retrains a shipped model from its preset, the hint becomes `--preset NAME` by itself."""
    from gcnn.presets import preset
    from gcnn.train import TrainSettings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GCNN_MODELS_DIR", raising=False)
    settings = asdict(TrainSettings(**preset("gcnn_c4")))
    config = model_from_config(settings.pop("model")).config()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "gcnn_c4.json").write_text(json.dumps({"format_version": 1, "config": config,
                                                                    "training": settings}))
    assert train_command("gcnn_c4") == "python -m gcnn.train --preset gcnn_c4 --force && python -m gcnn.evaluate"
    problems = load_shipped()[1]
    assert problems["gcnn_c4"].endswith("Recreate it with `python -m gcnn.train --preset gcnn_c4 --force && "
                                        "python -m gcnn.evaluate`.")
    # No record at all: the preset, said to be today's recipe rather than the shipped one.
    assert "No readable cnn.json records how the shipped checkpoint was made; `python -m gcnn.train --preset cnn " \
           "&& python -m gcnn.evaluate` trains today's recipe" in problems["cnn"]


def test_a_hint_for_another_folder_names_it(tmp_path):
    command = train_command("cnn", tmp_path)
    assert f"--out-dir {tmp_path}" in command and command.endswith(f"python -m gcnn.evaluate --models-dir {tmp_path}")
