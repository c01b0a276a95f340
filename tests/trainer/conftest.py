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


def tiny_run(run_dir, kind: str, data_dir, broken: bool = False) -> None:
    """A run folder of tiny random models (16 px) on `data_dir` ("builtin" or a folder), saved as train.py does."""
    import torch

    from trainer.checkpoint import save_checkpoint
    from trainer.data import load_dataset
    from trainer.models.gan import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
    from trainer.models.vae import Encoder, EncoderConfig

    ds = load_dataset(str(data_dir), 16)
    card = ds.schema.cardinalities
    torch.manual_seed(0)
    g = Generator(GeneratorConfig(cardinalities=card, res=16, z_dim=8, width=8, embed_dim=4, w_dim=16))
    models = ({"G_ema": g, "D": Discriminator(DiscriminatorConfig(cardinalities=card, res=16, width=8))}
              if kind == "gan" else {"encoder": Encoder(EncoderConfig(res=16, z_dim=8, width=8)), "decoder": g})
    meta = {"schema": ds.schema.to_dict(), "res": 16, "z_dim": 8, "step": 3, "kimg": 0.1, "precisions": ["fp32"],
            "data_spec": ds.spec,
            "data": {"name": ds.name, "fingerprint": ds.fingerprint, "license": "", "attribution": ""}}  # as train.py
    if broken:
        torch.nn.init.constant_(g.to_rgb.bias, float("nan"))
    run_dir.mkdir()
    save_checkpoint(run_dir, kind=kind, meta=meta, models={k: m.eval() for k, m in models.items()})


@pytest.fixture(autouse=True, scope="module")
def _fp32_on_every_cpu():
    """Training steps and judges here run in fp32 whatever the CPU: `--precision auto` autocasts to bf16
    on a CPU where that pays (`cpu_bf16_pays`), and the tests' thresholds hold in fp32 on every machine.
    Module-scoped, so module-scoped fixtures that train see it too. Runs started as subprocesses keep
    auto; bf16 has tests of its own (precision="bf16")."""
    try:
        import trainer.steps
    except ImportError:  # the style-set and folder tests run without torch
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer.steps, "cpu_bf16_pays", lambda: False)
        yield
