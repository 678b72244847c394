"""The shipped models' designs and training settings, by name.

``python -m gcnn.train --preset NAME`` trains one; the checkpoints in
``models/`` were made that way (see the README for the exact commands).
"""

from __future__ import annotations

from typing import Any

__all__ = ["MNIST_MEAN", "MNIST_STD", "PRESETS", "preset"]

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
_NORMALISE = {"input_mean": MNIST_MEAN, "input_std": MNIST_STD}

_REFERENCE_GCNN = {"type": "GroupEquivariantCNN", "group": {"name": "cyclic", "order": 4}, "kernel_size": 5,
                   "in_channels": 1, "out_channels": 10, "num_hidden": 4, "hidden_channels": 16, **_NORMALISE}
_REFERENCE_CNN = {"type": "BaselineCNN", "kernel_size": 5, "in_channels": 1, "out_channels": 10, "num_hidden": 4,
                  "hidden_channels": 32, **_NORMALISE}

PRESETS: dict[str, dict[str, Any]] = {
    # The reference tutorial's plain CNN: twice the channels of the C4 GCNN, same depth, ~104k parameters.
    "cnn": {"model": _REFERENCE_CNN},
    # The reference tutorial's GCNN: C4, kernel 5, 4 hidden group convs of 16 channels, ~103k parameters.
    "gcnn_c4": {"model": _REFERENCE_GCNN},
    # What a practitioner tries first: the same CNN, trained on randomly rotated digits.
    "cnn_rotaug": {"model": _REFERENCE_CNN, "augment_rotation": True, "selection": "val_rotated"},
    # Our design, trained on upright digits only (see the README for why it works).
    "gcnn_best": {
        "model": {
            "type": "GroupEquivariantCNN", "group": {"name": "cyclic", "order": 16}, "kernel_size": 5,
            "in_channels": 1, "out_channels": 10, "num_hidden": 4, "hidden_channels": [8, 12, 16, 16, 32],
            "padding": 2, "norm": "batch", "pool_after": [0, 2], "group_pool": "max", "input_rotations": 2,
            **_NORMALISE,
        },
        "epochs": 10,
        "lr": 3e-3,
        "lr_schedule": "onecycle",
    },
}


def preset(name: str) -> dict[str, Any]:
    """A copy of one preset: ``{"model": config, ...training settings that differ from the defaults}``."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return {key: (dict(value) if isinstance(value, dict) else value) for key, value in PRESETS[name].items()}
