"""Every ```python block of README.md runs, as a reader would run it from the project folder."""

import re
from pathlib import Path

import pytest

from gcnn.shipped import models_dir

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.DOTALL | re.MULTILINE)


def test_readme_has_python_examples():
    assert BLOCKS


@pytest.mark.filterwarnings("ignore::FutureWarning")  # deprecation notes of torch.onnx / torch.jit in examples
@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: f"block {i + 1}")
def test_readme_block_runs(index, tmp_path, monkeypatch):
    """Runs in a temporary folder (files the example writes land there) where ``models/`` is the project's
    models folder, found by :func:`gcnn.shipped.models_dir`, so ``load_model("models/...")`` works as written."""
    pytest.importorskip("onnxscript", reason="the README's ONNX example needs onnx + onnxscript")
    (tmp_path / "models").symlink_to(models_dir().resolve(), target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GCNN_MODELS_DIR", raising=False)
    code = compile(BLOCKS[index], f"README.md python block {index + 1}", "exec")
    exec(code, {"__name__": "__readme__"})
