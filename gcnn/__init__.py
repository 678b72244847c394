"""gcnn: group-equivariant convolutional networks in PyTorch."""

from .basis import HarmonicBasis, KernelBasis, PixelBasis
from .checkpoint import CheckpointError, load_model
from .equivariance import EquivarianceError, check_equivariance
from .export import export_plain
from .groups import CyclicGroup, DihedralGroup, Group, group_from_config
from .models import BaselineCNN, GroupEquivariantCNN, count_parameters, model_from_config
from .nn import (
    ExactnessWarning,
    GroupBatchNorm,
    GroupConvolution,
    GroupLayerNorm,
    GroupPool,
    GroupRestriction,
    LiftingConvolution,
    SpatialPool,
    set_memory_format,
)
from .transforms import RotateImages

__version__ = "0.1.0"

__all__ = [
    "Group",
    "CyclicGroup",
    "DihedralGroup",
    "group_from_config",
    "LiftingConvolution",
    "GroupConvolution",
    "GroupPool",
    "SpatialPool",
    "GroupLayerNorm",
    "GroupBatchNorm",
    "GroupRestriction",
    "KernelBasis",
    "PixelBasis",
    "HarmonicBasis",
    "set_memory_format",
    "ExactnessWarning",
    "check_equivariance",
    "EquivarianceError",
    "RotateImages",
    "GroupEquivariantCNN",
    "BaselineCNN",
    "model_from_config",
    "count_parameters",
    "export_plain",
    "load_model",
    "CheckpointError",
    "__version__",
]
