"""export_plain: a plain torch.nn network with the same outputs; TorchScript, ONNX and torch.compile."""

import pytest
import torch
from model_configs import CONFIGS
from torch import nn

from gcnn import (
    BaselineCNN,
    CyclicGroup,
    DihedralGroup,
    GroupBatchNorm,
    GroupConvolution,
    GroupEquivariantCNN,
    GroupLayerNorm,
    GroupPool,
    GroupRestriction,
    LiftingConvolution,
    RotateImages,
    SpatialPool,
    export_plain,
    load_model,
    model_from_config,
)
from gcnn.evaluate import find_checkpoints
from gcnn.export import ChannelPermutation, InputRotationAverage, InvariantHead, SymmetricPool2d, Upsample
from gcnn.models import Normalise
from gcnn.presets import preset
from gcnn.shipped import models_dir

MODELS = {name: lambda c=config: GroupEquivariantCNN(**c) for name, config in CONFIGS.items()}
MODELS["gcnn_best design"] = lambda: model_from_config(preset("gcnn_best")["model"])  # max over 4 turned copies
MODELS["gcnn_best network"] = lambda: model_from_config({**preset("gcnn_best")["model"], "input_rotations": 1})
MODELS["baseline CNN"] = lambda: BaselineCNN(kernel_size=3, num_hidden=2, hidden_channels=6, input_mean=0.1,
                                             input_std=0.3)
MODELS["baseline CNN, 8 input rotations"] = lambda: BaselineCNN(kernel_size=3, num_hidden=2, hidden_channels=6,
                                                                input_rotations=8)
PLAIN_MODULES = (nn.Conv2d, nn.GroupNorm, nn.ReLU, nn.Linear, Normalise, InvariantHead, SymmetricPool2d,
                 ChannelPermutation, RotateImages, Upsample)
SIZES = [(size, size) for size in range(26, 34)] + [(27, 32), (33, 26)]  # every size near 28, and non-square


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
    assert isinstance(plain, InputRotationAverage) and plain.turn.angles == [22.5, 45, 67.5] and plain.pool == "max"
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


# The test configurations and the baselines (the gcnn_best design is the shipped checkpoint's, below), and every
# shipped checkpoint.
AT_EVERY_SIZE = {**{name: lambda name=name: trained_looking(name) for name in MODELS if "gcnn_best" not in name},
                 **{f"shipped {path.stem}": lambda path=path: load_model(path)
                    for path in find_checkpoints(models_dir())}}


@pytest.mark.parametrize("name", AT_EVERY_SIZE)
def test_export_matches_at_every_size(name):
    """SpatialPool pools an odd axis with centred 3-wide windows: the export must too (a plain 2x2 max pool moved
    gcnn_best's logits by up to 3.3 at 26-33 pixels, and a batch-norm C8 model's by 1.2e-3)."""
    model = AT_EVERY_SIZE[name]()
    assert_same_at_every_size(export_plain(model), model, batch=1, tolerance=1e-4)


def assert_same_at_every_size(plain: nn.Module, module: nn.Module, batch: int, tolerance: float) -> None:
    """The largest difference of the outputs on seeded random images of every size in SIZES is within tolerance."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for size in SIZES:
            x = torch.rand(batch, 1, *size, generator=generator)
            assert (plain(x) - module(x)).abs().max() <= tolerance, size


def sequential_of_layers() -> nn.Sequential:
    """What a user builds from the library's layers, with torch layers around them and a nested block."""
    torch.manual_seed(0)
    c8, c4 = CyclicGroup(8), CyclicGroup(4)
    network = nn.Sequential(
        nn.ReLU(),  # an elementwise layer before anything tells what comes in
        LiftingConvolution(c8, 5, 1, 6, padding=2), GroupBatchNorm(6), nn.GELU(), SpatialPool(2),
        nn.Sequential(GroupConvolution(c8, 3, 6, 4, padding=1), nn.ReLU(), GroupRestriction(c8, c4)),
        nn.Dropout(0.3), GroupConvolution(c4, 3, 8, 4, padding=1, stride=2), GroupLayerNorm(4, affine=True),
        nn.SiLU(), GroupBatchNorm(4), SpatialPool(2, mode="avg"), GroupPool("max"),
        nn.Conv2d(4, 5, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3),
    )
    with torch.no_grad():
        network(torch.rand(8, 1, 29, 29))  # batch-norm statistics away from 0 and 1
    return network.eval()


@pytest.mark.filterwarnings("ignore::gcnn.ExactnessWarning")  # the strided layer at sizes it is not exact at
def test_export_of_a_users_sequential():
    network = sequential_of_layers()
    plain = export_plain(network)
    # The first batch norm is folded into the convolution before it; the second, after an activation, is not.
    assert [type(m) for m in plain.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] == [nn.BatchNorm2d]
    assert_same_at_every_size(plain, network, batch=2, tolerance=1e-5)


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")  # deprecated in torch 2.14, still asked for
@pytest.mark.parametrize("build, shape", [
    (lambda: nn.Sequential(LiftingConvolution(CyclicGroup(4), 3, 2, 3, padding=1), nn.ReLU(),
                           GroupRestriction(CyclicGroup(4), CyclicGroup(2))), (2, 2, 11, 12)),
    (lambda: nn.Sequential(GroupConvolution(DihedralGroup(4), 3, 2, 3), GroupBatchNorm(3), SpatialPool(2)),
     (2, 2, 8, 11, 12)),
    (lambda: GroupConvolution(CyclicGroup(8), 5, 2, 3, padding="same"), (2, 2, 8, 11, 9)),
    (lambda: nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), GroupEquivariantCNN(
        **CONFIGS["C8 pooled, batch norm, max pool"], input_rotations=2)), (3, 1, 29, 30)),
], ids=["ends on a group map", "starts on a group map", "one layer", "a bundled model inside"])
def test_export_of_modules_that_start_or_end_on_group_maps(build, shape):
    """A group map coming in is flattened, one going out unflattened back to [B, C, |G|, H, W]."""
    torch.manual_seed(0)
    module = build().eval()
    plain = export_plain(module)
    x = torch.rand(shape)
    with torch.no_grad():
        expected = module(x)
        assert plain(x).shape == expected.shape
        assert (plain(x) - expected).abs().max() <= 1e-5
        assert (torch.jit.script(plain)(x) - expected).abs().max() <= 1e-5


class Residual(nn.Module):
    """A block whose forward uses a gcnn layer in its own way: the export cannot see what it does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = GroupConvolution(CyclicGroup(4), 3, 2, 2, padding=1)

    def forward(self, x):
        return x + self.conv(x)


@pytest.mark.parametrize("build, error, message", [
    (lambda: nn.Sequential(LiftingConvolution(CyclicGroup(4), 3, 1, 2), Residual()), TypeError,
     r"Sequential\[1\] \(Residual\) uses the gcnn layer 'conv'"),
    (lambda: nn.Sequential(LiftingConvolution(CyclicGroup(4), 3, 1, 2), nn.Conv3d(2, 2, 1)), TypeError,
     r"Sequential\[1\] \(Conv3d\) where it sits: it acts on a group feature map"),
    (lambda: nn.Sequential(LiftingConvolution(CyclicGroup(4), 3, 1, 2), GroupConvolution(CyclicGroup(8), 3, 2, 2)),
     ValueError, r"Sequential\[1\] \(GroupConvolution\) takes a map on 8 group elements, but a map on 4"),
    (lambda: nn.Sequential(LiftingConvolution(CyclicGroup(4), 3, 1, 2), GroupBatchNorm(2, track_running_stats=False)),
     ValueError, "no running statistics"),
    (lambda: nn.Sequential(SpatialPool(2), GroupPool()), ValueError, "starts with Sequential\\[0\\] \\(SpatialPool\\)"),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), GroupPool()), ValueError, "GroupPool\\) takes a group feature map"),
], ids=["custom forward", "torch layer on a group map", "another group", "batch statistics", "unknown group",
        "group pool on an image"])
def test_export_refuses_what_it_cannot_express_and_names_it(build, error, message):
    with pytest.raises(error, match=message):
        export_plain(build())


class Block(nn.Sequential):
    """A user's named block: an nn.Sequential subclass that keeps nn.Sequential's forward."""


class Shortcut(nn.Sequential):
    def forward(self, x):
        return x + super().forward(x)


def test_export_walks_sequential_subclasses_that_keep_its_forward():
    c4 = CyclicGroup(4)
    network = nn.Sequential(LiftingConvolution(c4, 3, 1, 2, padding=1), Block(GroupConvolution(c4, 3, 2, 2), nn.ReLU()))
    x = torch.rand(2, 1, 9, 9)
    with torch.no_grad():
        assert (export_plain(network)(x) - network(x)).abs().max() <= 1e-6
    with pytest.raises(TypeError, match=r"Sequential\[1\] \(Shortcut\) uses the gcnn layer '0'"):
        export_plain(nn.Sequential(LiftingConvolution(c4, 3, 1, 2, padding=1),
                                   Shortcut(GroupConvolution(c4, 3, 2, 2, padding=1))))


def test_export_copies_plain_torch_modules():
    linear = nn.Linear(2, 2)
    plain = export_plain(linear)
    x = torch.rand(3, 2)
    assert torch.equal(plain(x), linear(x)) and plain[0] is not linear


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


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_export_runs_in_onnx_runtime_at_another_size(tmp_path):
    """An ONNX graph holds the pooling windows of the size it was exported at: 27x27 pools 27 -> 14 -> 7 with the
    centred 3-wide windows, as the model does."""
    ort = pytest.importorskip("onnxruntime", reason="ONNX export is checked with onnxruntime (requirements-dev.txt)")
    pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")
    model = trained_looking("C8 pooled, batch norm, max pool")
    plain = export_plain(model)
    x = torch.rand(3, 1, 27, 27)
    path = tmp_path / "model.onnx"
    torch.onnx.export(plain, (x[:2],), dynamo=True, verbose=False,
                      dynamic_shapes=({0: torch.export.Dim("batch")},)).save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        assert (torch.from_numpy(logits) - model(x)).abs().max() <= 1e-4


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
