"""A tiny labelled folder dataset (16 images, 2 attributes) for fast training tests; torch on one thread."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

COLORS = {"red": (220, 40, 40), "blue": (40, 60, 220)}
SHAPES = ("square", "bar")


def write_tiny_set(root, n: int = 16, size: int = 32):
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    lines = ["file,color,shape"]
    for i in range(n):
        color, shape = list(COLORS)[i % 2], SHAPES[(i // 2) % 2]
        img = np.full((size, size, 3), 235, np.uint8)
        o = 2 + i % 5  # a little variety within each condition
        if shape == "square":
            img[o:o + size // 2, o:o + size // 2] = COLORS[color]
        else:
            img[size // 2 - 3:size // 2 + 3, o:size - o] = COLORS[color]
        Image.fromarray(img).save(root / "images" / f"{i:03d}.png")
        lines.append(f"images/{i:03d}.png,{color},{shape}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory):
    return write_tiny_set(tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """torch on one thread for every module here, as the training tests' configs ask (threads=1)
    and whatever order the modules run in: the models are tiny, and on a busy machine more threads
    only wait for each other."""
    try:
        import torch
    except ImportError:  # the style-set and folder tests run without torch
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
