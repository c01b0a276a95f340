"""The sample grid: fixed latents, one labelled row per value of each attribute.

Every row uses the same latents and the same base conditions (one per column) with one
attribute set to one value, so a person sees each condition at work across the row.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from engine.schema import Schema
from trainer.preview import labelled_strips

__all__ = ["GridSpec", "make_grid_spec", "render_grid", "to_uint8"]

MAX_VALUES_SHOWN = 12  # rows per attribute; larger attributes show their first values
LABEL_WIDTH = 120


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class GridSpec:
    """Fixed latents (cols, Z) and the condition of every row: rows of (cols, A) int64."""

    def __init__(self, z: torch.Tensor, conds: list[torch.Tensor], titles: list[str]):
        self.z, self.conds, self.titles = z, conds, titles


def make_grid_spec(schema: Schema, labels: torch.Tensor, z_dim: int, cols: int = 8, seed: int = 1234) -> GridSpec:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(cols, z_dim, generator=g)
    base = labels.cpu()[torch.randint(len(labels), (cols,), generator=g)]  # (cols, A) real label combinations
    conds, titles = [], []
    for i, attr in enumerate(schema.attributes):
        for v in range(min(attr.cardinality, MAX_VALUES_SHOWN)):
            c = base.clone()
            c[:, i] = v
            conds.append(c)
            titles.append(f"{attr.name}={attr.label(attr.values[v])}")
    return GridSpec(z, conds, titles)


@torch.no_grad()
def render_grid(model: torch.nn.Module, spec: GridSpec, device: torch.device) -> Image.Image:
    """Draw every row with `model(z, c)`; returns the labelled PNG-ready image."""
    z = spec.z.to(device)
    rows = [to_uint8(model(z, c.to(device))) for c in spec.conds]  # each (cols, H, W, 3)
    cols, res = rows[0].shape[0], rows[0].shape[1]
    return labelled_strips([(title[:20], row) for title, row in zip(spec.titles, rows)],
                           tile=res, cols=cols, label_w=LABEL_WIDTH)
