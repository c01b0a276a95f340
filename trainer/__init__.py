"""trainer: datasets, the conditional GAN / VAE, the training loop and checkpoints.

Importing `trainer` is cheap (no torch); the names below load their module on first use.
"""

from __future__ import annotations

import importlib

__all__ = ["load_run", "LoadedRun", "CheckpointError", "TrainConfig", "training_loop"]

_LAZY = {
    "load_run": "trainer.checkpoint",
    "LoadedRun": "trainer.checkpoint",
    "CheckpointError": "trainer.checkpoint",
    "TrainConfig": "trainer.train",
    "training_loop": "trainer.train",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")
