"""Checkpoint -> verified ONNX model pack (`moe export`), pack verification, Triton repository.

    from export import build_pack, load_runs       # torch (imported on first use)
    exported = build_pack(load_runs([gan_run, vae_run]), Path("packs/moe-default"), fp16=True)
    from export import check_pack, write_triton_repo   # no torch

Importing this package imports nothing heavy: every name loads its module on first use, so
`moe packs list/verify` work on a serving machine without torch.
"""

from __future__ import annotations

__all__ = ["build_pack", "load_runs", "parity_against_runs", "ExportError", "Exported", "RunModels",
           "Check", "check_pack", "write_triton_repo"]

_LAZY = {"build_pack": "export.build", "load_runs": "export.build", "parity_against_runs": "export.build",
         "ExportError": "export.build", "Exported": "export.build", "RunModels": "export.build",
         "Check": "export.verify", "check_pack": "export.verify", "write_triton_repo": "export.triton"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'export' has no attribute {name!r}")
