"""The wheel: built from a copy of the source, installed without the app extras, the core works with torch alone."""

import ast
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP_ONLY = {"streamlit", "plotly"}  # the app extra's imports: only gcnn/app may use them
# Not installed in the check below: the app extra, and the train extra (MNIST reading, progress bars).
MISSING = [*sorted(APP_ONLY), "streamlit_drawable_canvas", "PIL", "skimage", "torchvision", "tqdm"]

# Run in a fresh interpreter whose sys.path starts with the wheel's install folder.  The modules in MISSING
# are made unimportable first, as they are where only `pip install gcnn` ran.
CHECK = """
import importlib.abc, json, os, sys

MISSING, TARGET, CHECKPOINT = set(sys.argv[1].split(",")), sys.argv[2], sys.argv[3]


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in MISSING:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
importable = {}
for name in ("streamlit", "plotly"):
    try:
        __import__(name)
        importable[name] = True
    except ModuleNotFoundError:
        importable[name] = False

import torch

before = set(sys.modules)
import gcnn
import gcnn.checkpoint, gcnn.equivariance, gcnn.export, gcnn.models, gcnn.shipped, gcnn.transforms

imported = sorted({m.split(".")[0] for m in set(sys.modules) - before} - {"gcnn"} - set(sys.stdlib_module_names))

# The commands that need the train extra say so: exit code and the last line of what they print.
import contextlib, io
import gcnn.evaluate, gcnn.train

commands = {}
for name, main, arguments in [("train", gcnn.train.main, ["--preset", "cnn", "--out-dir", "runs"]),
                              ("evaluate", gcnn.evaluate.main, [CHECKPOINT, "--out", "e.json"])]:
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        code = main(arguments)
    commands[name] = [code, printed.getvalue().strip().splitlines()[-1]]
torch.manual_seed(0)
model = gcnn.GroupEquivariantCNN(gcnn.CyclicGroup(4), kernel_size=3, num_hidden=1, hidden_channels=3).eval()
x = torch.rand(2, 1, 28, 28)
gcnn.checkpoint.save_model(model, "saved/tiny")
reloaded = gcnn.load_model("saved/tiny.pt")
shipped = gcnn.load_model(CHECKPOINT)
print(json.dumps({
    "importable": importable,
    "imported": imported,
    "gcnn_file": gcnn.__file__,
    "logits": list(model(x).shape),
    "reloaded_equal": bool(torch.equal(reloaded(x), model(x))),
    "shipped_logits": list(shipped(x).shape),
    "quarter_turn_error": max(r.error for r in shipped.check_equivariance() if r.exact),
    "models_dir": str(gcnn.shipped.models_dir().resolve()),
    "exported": type(gcnn.export_plain(model)).__name__,
    "commands": commands,
}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (building in place would write build/ into the checkout)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "gcnn", source / "gcnn", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(out)], check=True, capture_output=True, text=True)
    (path,) = out.glob("gcnn-*.whl")
    return path


def test_wheel_holds_the_package_and_no_models(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    packages = {name.split("/")[0] for name in names}
    assert packages == {"gcnn", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "gcnn/app/ui.py" in names and "gcnn/equivariance.py" in names
    assert "gcnn/py.typed" in names  # PEP 561: without it type checkers ignore the annotations
    assert not any(name.endswith((".pt", ".json")) or "models/" in name for name in names)


def test_only_gcnn_app_imports_the_app_extras(wheel):
    archive = zipfile.ZipFile(wheel)
    importers = set()
    for name in archive.namelist():
        if name.endswith(".py"):
            for node in ast.walk(ast.parse(archive.read(name))):
                modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                           [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(module.split(".")[0] in APP_ONLY for module in modules):
                    importers.add(name)
    assert importers and all(name.startswith("gcnn/app/") for name in importers), importers


def test_core_installs_and_works_without_the_extras(wheel, tmp_path):
    metadata = zipfile.ZipFile(wheel).read(next(n for n in zipfile.ZipFile(wheel).namelist()
                                                 if n.endswith("METADATA"))).decode()
    core = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert core == ["Requires-Dist: torch>=2.4"]

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, text=True)
    work = tmp_path / "work"  # the working directory: no checkout, no models/ folder
    work.mkdir()
    checkpoint = ROOT / "models" / "gcnn_c4.pt"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-s", "-c", CHECK, ",".join(MISSING), str(target), str(checkpoint)],
                            cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["importable"] == {"streamlit": False, "plotly": False}
    assert report["gcnn_file"].startswith(str(target))  # the installed copy, not the checkout
    assert report["imported"] == [], "importing the core pulled in more than torch and the standard library"
    assert report["logits"] == [2, 10] and report["shipped_logits"] == [2, 10] and report["reloaded_equal"]
    assert report["quarter_turn_error"] < 1e-5
    assert report["exported"] == "Sequential"
    for name, missing in (("train", "tqdm"), ("evaluate", "torchvision")):
        code, message = report["commands"][name]
        assert code == 1 and f"needs {missing}, which is not installed" in message, message
        assert 'pip install "gcnn[train]"' in message
    # Shipped models are looked for under the working directory, never inside site-packages.
    assert report["models_dir"] == str((work / "models").resolve())
