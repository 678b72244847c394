"""export_plain: a plain torch.nn network with the same outputs; TorchScript, ONNX and torch.compile."""

import pytest
import torch
from model_configs import CONFIGS
from torch import nn

from gcnn import BaselineCNN, GroupEquivariantCNN, RotateImages, export_plain, load_model, model_from_config
from gcnn.evaluate import find_checkpoints
from gcnn.export import ChannelPermutation, InputRotationAverage, InvariantHead
from gcnn.models import Normalise
from gcnn.presets import preset
from gcnn.shipped import models_dir

MODELS = {name: lambda c=config: GroupEquivariantCNN(**c) for name, config in CONFIGS.items()}
MODELS["gcnn_best design"] = lambda: model_from_config(preset("gcnn_best")["model"])  # averages 2 turned inputs
MODELS["gcnn_best network"] = lambda: model_from_config({**preset("gcnn_best")["model"], "input_rotations": 1})
MODELS["baseline CNN"] = lambda: BaselineCNN(kernel_size=3, num_hidden=2, hidden_channels=6, input_mean=0.1,
                                             input_std=0.3)
MODELS["baseline CNN, 8 input rotations"] = lambda: BaselineCNN(kernel_size=3, num_hidden=2, hidden_channels=6,
                                                                input_rotations=8)
PLAIN_MODULES = (nn.Conv2d, nn.GroupNorm, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Linear, Normalise, InvariantHead,
                 ChannelPermutation, RotateImages)


def trained_looking(name: str) -> nn.Module:
    """A model whose batch-norm statistics and affine parameters are not the defaults, in eval mode."""
    torch.manual_seed(0)
    model = MODELS[name]()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, 1, 28, 28))  # training mode: running statistics move away from 0 and 1
        for module in model.modules():
            if isinstance(module, nn.BatchNorm3d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("name", MODELS)
def test_export_computes_the_same_logits_with_plain_layers(name):
    model = trained_looking(name)
    plain = export_plain(model)
    leaves = [m for m in plain.modules() if not list(m.children())]
    assert all(isinstance(m, PLAIN_MODULES) for m in leaves), plain
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        assert relative_error(plain(x), model(x)) < 1e-6
        assert relative_error(plain(x[:1]), model(x[:1])) < 1e-6  # batch size 1


def test_export_of_input_rotation_averaging_wraps_the_plain_network():
    plain = export_plain(trained_looking("gcnn_best design"))
    assert isinstance(plain, InputRotationAverage) and plain.turn.angles == [11.25]
    assert isinstance(export_plain(trained_looking("baseline CNN, 8 input rotations")), InputRotationAverage)


def test_export_is_a_snapshot_and_leaves_the_model_as_it_was():
    model = trained_looking("C8 pooled, batch norm, max pool").train()
    plain = export_plain(model)
    assert model.training and not plain.training
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        before = plain(x)
        for p in model.parameters():
            p.add_(1.0)
        assert torch.equal(plain(x), before)


def test_export_folds_batch_norm_and_restrictions_into_convolutions():
    for name in ("C8 -> C4 -> C1", "D4 -> C4"):
        assert not any(isinstance(m, (nn.BatchNorm3d, ChannelPermutation)) for m in export_plain(trained_looking(name)))
    # A restriction that ends the network has no next convolution to absorb it.
    ending = export_plain(trained_looking("C8 -> C4 -> C2 at the end, batch norm"))
    assert sum(isinstance(m, ChannelPermutation) for m in ending) == 1
    assert not any(isinstance(m, nn.BatchNorm3d) for m in ending)


def test_export_rejects_other_modules():
    with pytest.raises(TypeError, match="Linear"):
        export_plain(nn.Linear(2, 2))


# Every test configuration, the planned cnn_rotaug_tta design, and every checkpoint in the models folder (the
# shipped ones, gcnn_best's input rotations included).
EXPORTED = {**{name: lambda name=name: trained_looking(name) for name in [*CONFIGS, "baseline CNN, 8 input rotations"]},
            **{f"shipped {path.stem}": lambda path=path: load_model(path) for path in find_checkpoints(models_dir())}}


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")  # deprecated in torch 2.14, still asked for
# torch's own batch-size check inside group_norm; the trace is checked at another batch size below.
@pytest.mark.filterwarnings("ignore:Converting a tensor to a Python boolean:torch.jit.TracerWarning")
@pytest.mark.parametrize("name", EXPORTED)
def test_export_scripts_traces_and_runs_in_onnx_runtime(name, tmp_path):
    """TorchScript, a trace checked at another batch size, and ONNX with a dynamic batch run by onnxruntime."""
    onnx = pytest.importorskip("onnx", reason="ONNX export is checked with onnx + onnxruntime (requirements-dev.txt)")
    ort = pytest.importorskip("onnxruntime", reason="ONNX export is checked with onnxruntime (requirements-dev.txt)")
    pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")
    model = EXPORTED[name]()
    plain = export_plain(model)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        expected = model(x)
        assert relative_error(torch.jit.script(plain)(x), expected) < 1e-6
        assert relative_error(torch.jit.trace(plain, x[:1], check_inputs=[(x,)])(x), expected) < 1e-6
    path = tmp_path / "model.onnx"
    torch.onnx.export(plain, (x[:2],), dynamo=True, verbose=False,
                      dynamic_shapes=({0: torch.export.Dim("batch")},)).save(str(path))
    onnx.checker.check_model(str(path), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 4):
        (logits,) = session.run(None, {session.get_inputs()[0].name: x[:batch].numpy()})
        assert relative_error(torch.from_numpy(logits), expected[:batch]) < 1e-5


def test_every_shipped_checkpoint_is_exported():
    assert {"shipped gcnn_best", "shipped gcnn_c4", "shipped cnn"} <= set(EXPORTED)


@pytest.mark.parametrize("name", ["C8 -> C4 -> C1", "gcnn_best network"])
def test_models_compile_as_one_graph(name):
    """torch.compile traces our layers without graph breaks, in training (gradients) and in eval."""
    torch._dynamo.reset()
    model = trained_looking(name)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)  # graph capture only: fast, no C++ build
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert relative_error(compiled(x), model(x)) < 1e-6
    model.train()
    compiled(x).square().sum().backward()
    compiled_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x).square().sum().backward()
    for compiled_grad, p in zip(compiled_grads, model.parameters(), strict=True):
        assert torch.allclose(compiled_grad, p.grad, rtol=1e-4, atol=1e-6)
