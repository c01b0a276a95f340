"""A tiny, randomly initialised, fully exported pack for tests and benchmarks.

`make_tiny_pack(out_dir)` builds the real trainer models (small widths, 32 px, the
builtin style-set schema), saves them as two run folders with `trainer.checkpoint`, and
exports them with `export.build` into `out_dir/tiny` — the same path the real runs take,
only untrained. `upscaler=True` adds a third run, a tiny x4 upscaler (32 -> 128 px) whose
residual is nudged away from zero, so the pack's pictures differ from a plain upscale. A few no-grad forward passes in train mode first give BatchNorm running
statistics and spectral-norm vectors realistic values (as any trained run has), so the
fp16 variant is compared under the same conditions as a real export.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

__all__ = ["make_tiny_pack", "make_tiny_runs", "make_tiny_upscaler_run", "one_torch_thread", "TINY"]

log = logging.getLogger(__name__)

TINY = {"res": 32, "z_dim": 16, "width": 8, "embed_dim": 4, "w_dim": 32}


def make_tiny_runs(out_dir: Path, seed: int = 0, schema=None) -> tuple[Path, Path]:
    """Two run folders (GAN, VAE) of tiny random models: `out_dir/runs/00001-gan-tiny`,
    `out_dir/runs/00002-vae-tiny`. `schema` defaults to the builtin style-set schema."""
    import torch

    from trainer.checkpoint import save_checkpoint
    from trainer.models.gan import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
    from trainer.models.vae import Encoder, EncoderConfig, LatentPrior, LatentPriorConfig

    if schema is None:
        from trainer.styleset import SCHEMA as schema
    cards, res, z_dim = schema.cardinalities, TINY["res"], TINY["z_dim"]
    torch.manual_seed(seed)
    gcfg = GeneratorConfig(cardinalities=cards, res=res, z_dim=z_dim, width=TINY["width"],
                           embed_dim=TINY["embed_dim"], w_dim=TINY["w_dim"])
    g, dec = Generator(gcfg), Generator(gcfg)
    d = Discriminator(DiscriminatorConfig(cardinalities=cards, res=res, width=TINY["width"]))
    enc = Encoder(EncoderConfig(res=res, z_dim=z_dim, width=TINY["width"]))

    prior, codes = LatentPrior(LatentPriorConfig(z_dim=z_dim)), []
    with torch.no_grad():  # settle BN running stats and spectral-norm vectors; fit the VAE's prior
        for m in (g, dec, d, enc):
            m.train()
        for _ in range(4):
            c = torch.stack([torch.randint(0, n, (16,)) for n in cards], dim=1)
            x = g(torch.randn(16, z_dim), c)
            dec(torch.randn(16, z_dim), c)
            d(x, c)
            codes.append(enc(x))
        prior.fit(*map(torch.cat, zip(*codes)))
    data = {"name": "tiny random", "license": "CC0-1.0",
            "attribution": "randomly initialised test model", "fingerprint": "0" * 16}
    meta = {"schema": schema.to_dict(), "res": res, "z_dim": z_dim, "step": 0, "kimg": 0.0, "data": data,
            "data_spec": "none", "background": "flat"}  # so the engine's cut-out path runs on the tiny pack too
    runs = (Path(out_dir) / "runs" / "00001-gan-tiny", Path(out_dir) / "runs" / "00002-vae-tiny")
    for run, kind, models in ((runs[0], "gan", {"G_ema": g, "D": d}),
                              (runs[1], "vae", {"encoder": enc, "decoder": dec, "prior": prior})):
        run.mkdir(parents=True, exist_ok=True)
        save_checkpoint(run, kind=kind, meta=meta, models={k: m.eval() for k, m in models.items()})
    return runs


def make_tiny_upscaler_run(out_dir: Path, seed: int = 0, res: int | None = None, scale: int = 4) -> Path:
    """A run folder `out_dir/runs/00003-upscaler-tiny` of a tiny random x`scale` upscaler for
    `res` px pictures (default: the tiny pack's), its residual made non-zero."""
    import torch

    from trainer.checkpoint import save_checkpoint
    from trainer.models.upscaler import Upscaler, UpscalerConfig

    res = res or TINY["res"]
    torch.manual_seed(seed + 1)
    up = Upscaler(UpscalerConfig(in_res=res, scale=scale, width=8, blocks=1))
    with torch.no_grad():
        torch.nn.init.normal_(up.tail.weight, std=0.05)  # an untrained one is exactly bilinear
    run = Path(out_dir) / "runs" / "00003-upscaler-tiny"
    run.mkdir(parents=True, exist_ok=True)
    meta = {"res": res, "scale": scale, "out_res": res * scale, "step": 0, "kimg": 0.0, "data_spec": "none",
            "data": {"name": "tiny random", "license": "CC0-1.0", "attribution": "randomly initialised test model",
                     "fingerprint": "0" * 16}}
    save_checkpoint(run, kind="upscaler", meta=meta, models={"upscaler": up.eval()})
    return run


@contextmanager
def one_torch_thread():
    """Tiny tensors gain nothing from threads, and on a shared 2-core machine torch's
    spinning worker threads make them several times slower; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_tiny_pack(out_dir: Path, *, name: str = "tiny", fp16: bool = True, seed: int = 0,
                   upscaler: bool = False) -> Path:
    """Export a full tiny pack (generator, discriminator, encoder, decoder, and with `upscaler`
    a 32 -> 128 px upscaler; fp16 variants when `fp16`) to `out_dir/<name>` and return its
    path. A few seconds on 2 CPU cores."""
    from export.build import build_pack, load_runs

    with one_torch_thread():
        runs = make_tiny_runs(out_dir, seed=seed)
        if upscaler:
            runs = (*runs, make_tiny_upscaler_run(out_dir, seed=seed))
        exported = build_pack(load_runs(runs), Path(out_dir) / name, name=name, version="0.0.1", fp16=fp16)
    log.info("tiny pack at %s", exported.path)
    return exported.path
