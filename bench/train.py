"""`moe bench train`: images per second of one training step, GAN and VAE, 64 and 128 px.

Each case times the trainer's step (`trainer.steps`: one D forward on cat(real, fake), the
fakes drawn once for both players' steps, D frozen during the G step; bf16 autocast where it
pays on the device, `trainer.steps.amp_dtype`; channels_last weights, `make_task`) beside the
same step written plainly (eager fp32, separate real/fake forwards, every gradient computed) as
the baseline measured in the same run, in interleaved rounds. Random data of the right shape: the
step's cost does not depend on the pixels. Short by design, so it can run beside other work.

On a CPU most of the speed comes from the model's shape rather than the step: one conv per
resolution and width 16 (`default_width`). Measured numbers: docs/reports/trainer-notes.md.

`run_data` instead compares training on a folder with training on the built-in set:
each is loaded as the trainer loads it (timed), and the step is timed as the training loop
runs it (a batch indexed out of the uint8 images, the labels beside it, the schema's own
embeddings and projection heads), with the same config, in interleaved rounds; the ratio is
folder / built-in.
"""

from __future__ import annotations

import os
import statistics
import time

import torch

__all__ = ["run"]

ROUNDS = 3


def _plain_gan_step(task, real, c_real, c_fake):
    """The GAN step without tricks: the reference the trainer's step is compared against."""
    from trainer.augment import diff_augment
    from trainer.losses import d_hinge, g_hinge

    aug = lambda x: diff_augment(x, task.cfg.augment)  # noqa: E731
    z = torch.randn(real.shape[0], task.cfg.z_dim, device=real.device)
    fake = task.G(z, c_fake).detach()
    loss_d = d_hinge(task.D(aug(real), c_real), task.D(aug(fake), c_fake))
    task.opt_d.zero_grad()
    loss_d.backward()
    task.opt_d.step()
    loss_g = g_hinge(task.D(aug(task.G(torch.randn_like(z), c_fake)), c_fake))
    task.opt_g.zero_grad()
    task.opt_d.zero_grad()
    loss_g.backward()
    task.opt_g.step()
    with torch.no_grad():
        for p_ema, p in zip(task.G_ema.parameters(), task.G.parameters()):
            p_ema.copy_(p_ema * 0.999 + p * 0.001)


def _plain_vae_step(task, real, c_real, c_fake):
    from trainer.augment import diff_augment
    from trainer.losses import (adaptive_weight, d_hinge, g_hinge, latent_adversary_loss, classifier_loss,
                                vae_loss)

    aug = lambda x: diff_augment(x, task.cfg.augment)  # noqa: E731
    mu, logvar = task.encoder(real)
    z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
    recon = task.decoder(z, c_real)
    loss, _ = vae_loss(recon, real, mu, logvar, beta=1.0, free_bits=task.cfg.free_bits)
    loss = loss + task.cfg.latent_adv_weight * latent_adversary_loss(task.latent_clf(z), c_real, task.prior_entropy)
    adv = g_hinge(task.D_patch(aug(recon)).flatten(1).mean(1))
    (g_rec,) = torch.autograd.grad(loss, task.decoder.to_rgb.weight, retain_graph=True)
    (g_adv,) = torch.autograd.grad(adv, task.decoder.to_rgb.weight, retain_graph=True)
    loss = loss + task.cfg.patch_weight * adaptive_weight(g_rec, g_adv) * adv
    task.opt_ae.zero_grad()
    loss.backward()
    task.opt_ae.step()
    loss_lat = classifier_loss(task.latent_clf(z.detach()), c_real)
    task.opt_lat.zero_grad()
    loss_lat.backward()
    task.opt_lat.step()
    loss_dp = d_hinge(task.D_patch(aug(real)).flatten(1).mean(1), task.D_patch(aug(recon.detach())).flatten(1).mean(1))
    task.opt_dp.zero_grad()
    loss_dp.backward()
    task.opt_dp.step()


def _time(fn, batch: int, seconds: float, warmup: int = 1) -> float:
    """Images per second of `fn()` over at least `seconds` (after warm-up steps)."""
    for _ in range(warmup):
        fn()
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        sync()
        if (dt := time.perf_counter() - t0) >= seconds:
            return n * batch / dt


def run(*, seconds: float = 2.0, width: int | None = None, batch: int = 32, threads: int = 0,
        resolutions: tuple[int, ...] = (64, 128), kinds: tuple[str, ...] = ("gan", "vae")) -> dict:
    """Every kind at every resolution on random data beside the plain step."""
    from trainer.steps import make_task, precision_name
    from trainer.augment import DEFAULT_POLICY
    from trainer.train import default_width, make_config

    torch.set_num_threads(threads or os.cpu_count() or 1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    width = width or default_width()
    cards = (8, 6, 4, 5, 6)  # the built-in schema's shape
    results = {}
    for kind in kinds:
        for res in resolutions:
            torch.manual_seed(0)
            b = batch if res == 64 else batch // 2
            # patch D on from the first step so the VAE step includes it, as in a long run
            cfg = make_config(kind, res=res, width=width, batch=b, cond_ramp_kimg=0.0, patch_start_kimg=0.0,
                              augment=DEFAULT_POLICY)  # every op timed (a run on data may drop color)
            labels = torch.stack([torch.randint(n, (256,)) for n in cards], dim=1).to(device)
            task = make_task(cfg, cards, device, labels)
            real = torch.rand(b, 3, res, res, device=device) * 2 - 1
            c_real, c_fake = labels[:b], labels[b:2 * b]
            if device.type == "cuda":
                real = real.contiguous(memory_format=torch.channels_last)
            plain_step = _plain_gan_step if kind == "gan" else _plain_vae_step
            real_plain = real.contiguous()  # the baseline's batch in the default layout
            fast, plain = [], []
            for _ in range(ROUNDS):  # interleaved, so load from other processes hits both alike
                fast.append(_time(lambda: task.step(real, c_real, c_fake, 10**6), b, seconds / ROUNDS))
                plain.append(_time(lambda: plain_step(task, real_plain, c_real, c_fake), b, seconds / ROUNDS))
            f, p = statistics.median(fast), statistics.median(plain)
            results[f"{kind}_{res}"] = {"img_s": round(f, 1), "baseline_img_s": round(p, 1),
                                        "speedup": round(statistics.median(a / b for a, b in zip(fast, plain)), 2),
                                        "batch": b, "kimg_per_hour": round(f * 3.6, 1),
                                        "precision": precision_name(task.amp)}
    return {"bench": "train", "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(),
            "threads": torch.get_num_threads(), "width": width, "seconds_per_case": seconds,
            "note": "median of 3 interleaved rounds; CPU numbers depend on other load on the machine; baseline = the "
                    "same step written plainly (eager fp32, separate real/fake D forwards, all gradients), same run",
            "results": results}


def run_data(data: str, *, seconds: float = 2.0, width: int | None = None, batch: int = 32, threads: int = 0,
             res: int = 64, kinds: tuple[str, ...] = ("gan", "vae"), builtin: str = "builtin") -> dict:
    """Images per second of the training loop's step on `data` and on `builtin` (the built-in set),
    same config, in interleaved rounds; also how long each took to load."""
    from trainer.augment import DEFAULT_POLICY
    from trainer.data import load_dataset
    from trainer.steps import make_task
    from trainer.train import default_width, make_config

    torch.set_num_threads(threads or os.cpu_count() or 1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    width = width or default_width()
    loaded = {}
    for name, spec in (("builtin", builtin), ("folder", data)):
        t0 = time.perf_counter()
        ds = load_dataset(spec, res, progress=False)
        loaded[name] = (ds, time.perf_counter() - t0)
    results = {}
    for kind in kinds:
        cfg = make_config(kind, res=res, width=width, batch=batch, cond_ramp_kimg=0.0, patch_start_kimg=0.0,
                          augment=DEFAULT_POLICY, device=device.type)
        steps = {name: _loop_step(cfg, ds, device, make_task) for name, (ds, _) in loaded.items()}
        rates: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(ROUNDS):
            for name, step in steps.items():
                rates[name].append(_time(step, batch, seconds / ROUNDS))
        results[kind] = {name: round(statistics.median(r), 1) for name, r in rates.items()} | {
            "ratio": round(statistics.median(f / b for f, b in zip(rates["folder"], rates["builtin"])), 2)}
    return {"bench": "train", "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(),
            "threads": torch.get_num_threads(), "width": width, "res": res, "batch": batch,
            "seconds_per_case": seconds,
            "data": {name: {"spec": ds.spec, "images": len(ds), "attributes": dict(zip(ds.schema.names,
                                                                                     ds.schema.cardinalities)),
                            "load_s": round(dt, 2)} for name, (ds, dt) in loaded.items()},
            "note": "img/s of the training loop's step, median of 3 interleaved rounds, same config on both; "
                    "ratio = folder / builtin, per round",
            "results": results}


def _loop_step(cfg, ds, device, make_task):
    """One step as `trainer.train` runs it on the dataset `ds` (a fresh task with its schema)."""
    torch.manual_seed(0)
    images = torch.from_numpy(ds.images).permute(0, 3, 1, 2).contiguous().to(device)  # (N, 3, H, W) uint8
    labels = torch.from_numpy(ds.labels).to(device)
    task = make_task(cfg, ds.schema.cardinalities, device, labels)
    b = cfg.batch

    def step():
        idx = torch.randint(len(images), (b,), device=device)
        real = images[idx].float().div_(127.5).sub_(1)
        task.step(real, labels[idx], labels[torch.randint(len(labels), (b,), device=device)], 10**6)

    return step
