"""The training loop: one function for both kinds of run (the step lives in `trainer.steps`).

Progress is counted in images seen, or under a time budget (`--minutes`) in wall time: the
budget then sets the schedule and the run keeps its best-scored snapshot (`trainer/budget.py`).
Per tick: one status line, one `stats.jsonl` line and TensorBoard scalars. A labelled sample
grid every `grid_kimg`, a checkpoint every `snapshot_minutes` and at the end. Data parallel under
`torchrun` (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from trainer.augment import AUGMENTS, AUTO, choose_policy
from trainer.budget import Budget, expected_kimg, lr_factor
from trainer.checkpoint import BEST, LAST, load_training_state, save_checkpoint
from trainer.data import load_dataset
from trainer.defaults import FEW_SHOT
from trainer.loop import (ConfigError, Progress, TrainingDiverged, crossed, log_tick, new_run_dir, out_of_time,
                          pick_device, tensorboard, tick_stats)
from trainer.models.gan import discriminator_blocks
from trainer.samples import make_grid_spec, render_grid
from trainer.steps import PRECISIONS, make_task, precision_name

__all__ = ["TrainConfig", "training_loop", "make_config", "default_width", "fake_conditions", "ConfigError",
           "TrainingDiverged"]

log = logging.getLogger(__name__)

DIVERGE_LIMIT = 1e4  # |GAN loss| above this counts as divergence


@dataclass(frozen=True)
class TrainConfig:
    kind: str  # "gan" | "vae"
    data: str = "builtin"  # "builtin" or a folder
    res: int = 64
    kimg: float = 200.0  # train until this many thousand images have been seen; 0 = no limit (under --minutes)
    out: str = "runs"
    batch: int = 32  # total over all processes
    lr: float = 2e-4
    width: int = 32  # generator / decoder / encoder
    d_width: int = 0  # discriminators; 0 = same as width (their convolutions are most of a step's time on a CPU)
    z_dim: int = 128
    embed_dim: int = 32  # per attribute
    loss: str = "hinge"  # gan: hinge | ns | wgan-gp
    gp_weight: float = 10.0  # wgan-gp
    cls_weight: float = 0.0  # gan: classification loss (D's, see cls_heads) on D's real and G's fake images;
    # vae: a classifier trained on real images checks every decode and edit (x the adaptive weight); 0 = off
    cls_fake_weight: float = 0.0  # the classifier also learns that generated images are generated (vae: a class
    # of their own; gan: D's reading shows no value in particular), so marks only it reads cannot meet the term; 0 = off
    cls_d_weight: float = 0.0  # gan: weight of D's own classification of real images; 0 = cls_weight
    cls_heads: bool = False  # gan: D classifies with linear heads on its unpooled features, not its projections
    ms_weight: float = 0.0  # gan: mode-seeking term (pairs of fakes with the same conditions); 0 = off
    augment: str = AUTO  # DiffAugment on every discriminator input; "" = off; auto = chosen from the data
    cls_augment: str = ""  # gan: DiffAugment of the real images D's classification term reads, in a D pass of
    # their own; "" = it reads the images D scores (one pass)
    cond_ramp_kimg: float = -1.0  # conditioning 0 -> 1 over this many kimg; -1 = auto (few-shot sets only)
    cond_mix: float = 0.0  # gan: share of G's conditions drawn attribute by attribute (`fake_conditions`); 0 = rows
    ema_kimg: float = 10.0  # EMA half-life of the generator weights
    ema_rampup: float = 0.05
    kl_warmup_kimg: float = 20.0  # vae: KL and latent adversary weight 0 -> 1
    free_bits: float = 0.1  # vae: nats per latent dimension
    latent_adv_weight: float = 100.0  # vae: Fader adversary weight (lower ones leave attributes in z)
    patch_weight: float = 0.1  # vae: patch discriminator weight (times the adaptive weight); 0 = off
    patch_start_kimg: float = 20.0  # vae: the patch and classification terms start here
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 = all cores
    tick_kimg: float = 4.0
    grid_kimg: float = 50.0
    snapshot_minutes: float = 5.0
    max_minutes: float = 0.0  # stop (with a final grid and checkpoint) after this much wall time; 0 = no limit
    minutes: float = 0.0  # time budget: sets the schedule, ends the run, keeps the best snapshot; 0 = off
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto | fp32 | bf16: what the step autocasts to (auto: `trainer.steps.amp_dtype`)
    init_from: str = ""  # start from these weights: a run folder, a weights file or a shipped name (trainer/transfer.py)
    freeze_d: int = 0  # gan, with init_from: D's first blocks, nearest the image, stay frozen (FreezeD)

    def __post_init__(self) -> None:
        checks = [(self.kind in ("gan", "vae"), f"kind must be gan or vae, not {self.kind!r}"),
                  (self.res in (16, 32, 64, 128), f"--res must be 64 or 128 (or 16/32 for tests), not {self.res}"),
                  (self.loss in ("hinge", "ns", "wgan-gp"), f"--loss must be hinge, ns or wgan-gp, not {self.loss!r}"),
                  (self.precision in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}, "
                   f"not {self.precision!r}"),
                  (self.minutes >= 0, f"--minutes must be >= 0, not {self.minutes}"),
                  (self.kimg > 0 or (self.kimg == 0 and self.minutes > 0),
                   "--kimg must be > 0 (0 only under --minutes)"),
                  (not (self.kimg > 0 and self.minutes > 0),
                   "--kimg and --minutes both set the length of the run; give one of them"),
                  (self.batch >= 2 and self.lr > 0, "--lr must be > 0 and --batch >= 2"),
                  (self.width >= 4 and self.z_dim >= 2, "--width must be >= 4 and --z-dim >= 2"),
                  (self.augment == AUTO or set(filter(None, self.augment.split(","))) <= set(AUGMENTS),
                   f"--augment takes a comma list of {', '.join(AUGMENTS)}, not {self.augment!r}"),
                  (set(filter(None, self.cls_augment.split(","))) <= set(AUGMENTS),
                   f"--cls-augment takes a comma list of {', '.join(AUGMENTS)}, not {self.cls_augment!r}"),
                  (not self.cls_augment or (self.kind == "gan" and self.cls_weight > 0), "--cls-augment is what D's "
                   "classification term reads: it needs a GAN and --cls-weight > 0"),
                  (not self.cls_fake_weight or self.cls_weight > 0, "--cls-fake-weight trains the classifier of "
                   "the classification term: it needs --cls-weight > 0"),
                  (not self.cls_d_weight or (self.kind == "gan" and self.cls_weight > 0), "--cls-d-weight weighs "
                   "D's classification of real images: it needs a GAN and --cls-weight > 0"),
                  (not self.cls_heads or self.kind == "gan", "--cls-heads is a GAN option (the VAE's classifier "
                   "always reads unpooled features)"),
                  (0 <= self.cond_mix <= 1 and (self.cond_mix == 0 or self.kind == "gan"),
                   f"--cond-mix is a GAN option from 0 to 1, not {self.cond_mix}"),
                  (self.freeze_d == 0 or (self.kind == "gan" and self.init_from),
                   "--freeze-d freezes transferred discriminator blocks: it needs --from, and a GAN"),
                  (0 <= self.freeze_d < discriminator_blocks(self.res), f"--freeze-d must leave one of the "
                   f"discriminator's {discriminator_blocks(self.res)} blocks at {self.res} px to train, not {self.freeze_d}")]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)


def default_width(device: str = "auto") -> int:
    """32 on a GPU; 16 on a CPU, where width 32 trains several times slower (see docs/reports/trainer-notes.md)."""
    return 32 if device != "cpu" and torch.cuda.is_available() else 16


def make_config(kind: str, **flags) -> TrainConfig:
    """Config from CLI flags; flags left as None take TrainConfig's defaults, except the width
    (`default_width` of the device), the batch at 128 px (half the default) and --kimg under a
    time budget (0: the budget ends the run)."""
    values = {k: v for k, v in flags.items() if v is not None}
    values.setdefault("width", default_width(flags.get("device") or "auto"))
    if values.get("minutes", 0) > 0:
        values.setdefault("kimg", 0.0)
    if "batch" not in values and values.get("res", TrainConfig.res) == 128:
        values["batch"] = TrainConfig.batch // 2
    return TrainConfig(kind=kind, **values)


Scorer = Callable[[torch.nn.Module], dict]  # a snapshot's model (z, c) -> image  ->  its quick-eval score


def training_loop(cfg: TrainConfig, *, resume: str | Path | None = None, progress: bool = True,
                  clock: Callable[[], float] | None = None, scorer: Scorer | None = None) -> Path:
    """Train until cfg.kimg, or to the end of the cfg.minutes budget; returns the run folder.
    Raises DatasetError, TrainingDiverged.

    Under a budget, `clock` (seconds; default `time.monotonic`) measures it and `scorer` scores
    the snapshots (default: `trainer.eval.quick_scorer`, which loads or trains the judge first,
    inside the budget); tests inject both. Under torchrun (WORLD_SIZE > 1) this joins the process
    group and, if it created it, tears it down at the end.
    """
    owned = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        run_dir = _train(cfg, resume, progress, clock or time.monotonic, scorer)
        if owned:  # let every rank's last collective finish first: gloo aborts at exit if one is still in flight
            dist.barrier()
        return run_dir
    finally:
        if owned:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, resume: str | Path | None, progress: bool, clock: Callable[[], float],
           scorer: Scorer | None) -> Path:
    # Setup: processes, threads, device, data; under a budget the clock starts now.
    began = clock()
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    if cfg.batch % world:
        raise ConfigError(f"--batch {cfg.batch} must be divisible by the number of processes ({world})")
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    device = pick_device(cfg.device)
    ds = load_dataset(cfg.data, cfg.res, progress=progress and rank == 0)
    for note in ds.notes:
        log.warning("data: %s", note)
    # a few-shot GAN ramps its conditioning in (Shahbazi et al. 2022); the VAE's decoder is conditioned from the start
    ramp = cfg.kind == "gan" and len(ds) < FEW_SHOT
    ramp_pending = cfg.cond_ramp_kimg < 0 and ramp and cfg.minutes > 0  # set after the first tick
    if cfg.cond_ramp_kimg < 0 and not ramp_pending:
        cfg = dataclasses.replace(cfg, cond_ramp_kimg=round(cfg.kimg / 4, 3) if ramp else 0.0)
    if resume is None:  # a resumed run keeps the policy its config.json recorded
        policy, why = choose_policy(cfg.augment, ds.images, ds.labels, ds.schema.names, ds.schema.cardinalities)
        cfg = dataclasses.replace(cfg, augment=policy)
        if rank == 0:
            (log.warning if "warning:" in why else log.info)("%s", why)
            if cfg.cls_augment:
                _, why = choose_policy(cfg.cls_augment, ds.images, ds.labels, ds.schema.names, ds.schema.cardinalities)
                (log.warning if "warning:" in why else log.info)("classification term's %s", why)
    images = torch.from_numpy(ds.images).permute(0, 3, 1, 2).contiguous().to(device)  # (N, 3, H, W) uint8
    labels = torch.from_numpy(ds.labels).to(device)  # (N, A) int64
    if cfg.minutes > 0 and rank == 0 and scorer is None:  # the judge, loaded or trained once, inside the budget
        from trainer.eval import quick_scorer

        scorer = quick_scorer(ds, cfg.z_dim, device)

    # Models, optimisers, run folder; resume restores every tensor and the RNG.
    torch.manual_seed(cfg.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    # a pending conditioning ramp holds the conditioning at 0 until it is set
    task = make_task(dataclasses.replace(cfg, cond_ramp_kimg=math.inf) if ramp_pending else cfg,
                     ds.schema.cardinalities, device, labels)
    transferred = None
    if cfg.init_from:  # few-shot by transfer; a resumed run reads its own checkpoint below
        from trainer.transfer import start_from

        transferred = start_from(task, cfg, ds.schema, load=resume is None)
        if rank == 0 and resume is None:
            log.info("%s", transferred.summary())
    nimg, step, budget_state = 0, 0, None
    if resume is not None:
        run_dir = Path(resume)
        meta, extra = load_training_state(run_dir, task.models, task.optimizers)
        budget_state = meta.get("budget")
        nimg, step = int(meta["nimg"]), int(meta["step"])
        if meta["data"]["fingerprint"] != ds.fingerprint:
            log.warning("resuming on different data than %s was trained on (fingerprint %s, now %s)",
                        run_dir, meta["data"]["fingerprint"], ds.fingerprint)
        torch.set_rng_state(extra["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in extra:
            torch.cuda.set_rng_state(extra["rng_cuda"], device)
    else:
        run_dir = new_run_dir(Path(cfg.out), cfg.kind, cfg.data, cfg.res) if rank == 0 else None
    if world > 1:
        for m in task.models.values():  # identical start on every process
            for t in [*m.parameters(), *m.buffers()]:
                dist.broadcast(t.data, 0)
        torch.manual_seed(cfg.seed * 1000 + rank + step)  # different data and noise per process
    precision = precision_name(task.amp)
    if rank == 0:
        (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1))
        if transferred is not None and resume is None:
            (run_dir / "transfer.json").write_text(json.dumps(transferred.to_dict(), indent=1))
        (run_dir / "samples").mkdir(exist_ok=True)
        log.info("run %s on %s x%d (%s): %d images of %s, schema %s", run_dir, device, world,
                 precision, len(ds), ds.name, dict(zip(ds.schema.names, ds.schema.cardinalities)))
    grid = make_grid_spec(ds.schema, labels, cfg.z_dim)
    # the step's precisions in order of first use, over a resumed run's sessions too: a budget's kimg depends on them
    before = meta.get("precisions", []) if resume is not None else []
    meta_base = {"schema": ds.schema.to_dict(), "res": cfg.res, "z_dim": cfg.z_dim, "data_spec": cfg.data,
                 "data": {"name": ds.name, "license": ds.license, "attribution": ds.attribution,
                          "fingerprint": ds.fingerprint},
                 "config": dataclasses.asdict(cfg),
                 "precisions": list(dict.fromkeys([*before, precision]))}
    writer = tensorboard(run_dir) if rank == 0 else None
    budget = Budget.start(cfg.minutes, clock, began, budget_state) if cfg.minutes > 0 else None
    if budget is None:
        bar = Progress(cfg.kimg, nimg, enabled=progress and rank == 0)
    else:  # the learning rate follows the budget: lr_factor x the rate each group started with
        for opt in task.optimizers.values():
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])
        bar = Progress(cfg.minutes, nimg, enabled=progress and rank == 0, unit="min", completed=budget.elapsed() / 60)

    total, batch = int(cfg.kimg * 1000) if cfg.kimg > 0 else math.inf, cfg.batch // world
    t_start = time.monotonic()
    tick_start_nimg, tick_start_time, last_snapshot = nimg, t_start, t_start
    sums: dict[str, float] = {}
    done = nimg >= total
    if budget is not None:
        elapsed, budget.reserve = _synced((budget.elapsed(), budget.reserve), world, device)
        over = budget.over(elapsed)
        if over and nimg == 0 and rank == 0:
            log.warning("the %g-minute budget was spent before the first step (%.0f s of loading and judge "
                        "training): one step is taken, so that the run leaves a checkpoint", cfg.minutes, elapsed)
        done = done or (over and nimg > 0)  # a run that has not trained yet takes one step, for a checkpoint
        _set_lr(task.optimizers, lr_factor(elapsed / budget.seconds))
        tick_start_elapsed = elapsed
    while not done:
        # Accumulate gradients and update weights (one step of the task).
        idx = torch.randint(len(images), (batch,), device=device)
        real = images[idx].float().div_(127.5).sub_(1)  # (B, 3, H, W) in [-1, 1]
        if device.type == "cuda":
            real = real.contiguous(memory_format=torch.channels_last)
        c_fake = fake_conditions(labels, batch, cfg.cond_mix)
        losses = task.step(real, labels[idx], c_fake, nimg)
        nimg += cfg.batch
        step += 1
        done = nimg >= total or out_of_time(t_start, cfg.max_minutes, world, device)
        if budget is not None:  # the budget's clock, the same on every process: the end and the next step's rate
            elapsed, budget.reserve = _synced((budget.elapsed(), budget.reserve), world, device)
            over = budget.over(elapsed)
            done = done or over
            _set_lr(task.optimizers, lr_factor(elapsed / budget.seconds))

        # Check the losses: stop at the first NaN/inf or exploding GAN loss, naming the step.
        values = {k: float(v) for k, v in losses.items()}
        bad = [k for k, v in values.items() if not math.isfinite(v)
               or (k in ("loss_d", "loss_g") and abs(v) > DIVERGE_LIMIT)]
        if bad:
            raise TrainingDiverged(f"training diverged at step {step} ({nimg / 1000:.1f} kimg): "
                                   + ", ".join(f"{k}={values[k]:.4g}" for k in bad)
                                   + f"; the last checkpoint in {run_dir} is from before; try a lower --lr")
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v
        bar.update(nimg, values, None if budget is None else elapsed / 60)

        # Maintenance per tick: status line, stats.jsonl, TensorBoard.
        tick_due = nimg - tick_start_nimg >= cfg.tick_kimg * 1000 or done
        if tick_due and rank == 0:
            stats = tick_stats(nimg, step, tick_start_nimg, tick_start_time, sums, cfg.batch)
            if budget is not None:
                stats |= {"minutes": round(elapsed / 60, 2), "lr_factor": round(lr_factor(elapsed / budget.seconds), 4)}
            log_tick(run_dir, writer, bar, stats, nimg)
        if tick_due and ramp_pending:  # a quarter of the images the budget is expected to see
            (rate,) = _synced(((nimg - tick_start_nimg) / max(elapsed - tick_start_elapsed, 1e-9),), world, device)
            expected = expected_kimg(nimg, elapsed, rate, budget.seconds)
            cfg = dataclasses.replace(cfg, cond_ramp_kimg=round(expected / 4, 3))
            task.cfg = dataclasses.replace(task.cfg, cond_ramp_kimg=cfg.cond_ramp_kimg)  # the step reads task.cfg
            meta_base["config"], ramp_pending = dataclasses.asdict(cfg), False
            if rank == 0:
                (run_dir / "config.json").write_text(json.dumps(meta_base["config"], indent=1))
                log.info("conditioning ramp: %.3f kimg (a quarter of the %.1f kimg the budget is expected to see "
                         "at %.0f img/s)", cfg.cond_ramp_kimg, expected, rate)
        if tick_due:
            tick_start_nimg, tick_start_time, sums = nimg, time.monotonic(), {}
            tick_start_elapsed = elapsed if budget is not None else 0.0

        # Snapshot: sample grid every grid_kimg, checkpoint every few minutes and at the end; under a
        # budget, a scoring at its points, the best scored as checkpoint.*, the latest as checkpoint-last.*.
        grid_due = done or crossed(nimg, cfg.batch, cfg.grid_kimg)
        score_due = budget is not None and rank == 0 and budget.due(elapsed, over, step)
        ckpt_due = grid_due or score_due or time.monotonic() - last_snapshot >= cfg.snapshot_minutes * 60
        if rank == 0 and ckpt_due:
            t_snap = clock()
            model = task.prepare_sampling(_recal_batches(labels, cfg.z_dim, device), images)
            if grid_due:
                sheet = render_grid(model, grid, device)
                sheet.save(run_dir / "samples" / f"grid-{nimg / 1000:010.3f}kimg.png")
                writer.add_image("samples", torch.from_numpy(np.array(sheet)), nimg,
                                 dataformats="HWC")
            won = score_due and budget.score(scorer, model, elapsed, step, nimg, run_dir, t_snap)
            task.after_sampling()
            extra = {"rng_cpu": torch.get_rng_state()}
            if device.type == "cuda":
                extra["rng_cuda"] = torch.cuda.get_rng_state(device)
            meta = {**meta_base, "step": step, "nimg": nimg, "kimg": round(nimg / 1000, 3)}
            if budget is None:
                save_checkpoint(run_dir, kind=cfg.kind, models=task.models, optimizers=task.optimizers, extra=extra,
                                meta=meta)
            else:
                meta["budget"] = budget.state(elapsed)
                for stem in (LAST, *((BEST,) if won or not budget.scored else ())):  # before any scoring: the latest
                    save_checkpoint(run_dir, kind=cfg.kind, models=task.models, optimizers=task.optimizers,
                                    extra=extra, meta=meta, stem=stem)
                if score_due:  # what a scoring costs, with its checkpoints: the run ends that much early
                    budget.reserve = max(budget.reserve, clock() - t_snap)
            last_snapshot = time.monotonic()
    if budget is not None and rank == 0 and budget.best is not None:
        budget.announce(run_dir)
    bar.close()
    if writer is not None:
        writer.close()
    if world > 1:
        _check_in_sync(task.models)
    return run_dir


def fake_conditions(labels: torch.Tensor, n: int, mix: float = 0.0) -> torch.Tensor:
    """`n` conditions for the generator: random rows of `labels` (N, A), the data's joint
    distribution. A `mix` share of them take each attribute from a row of its own (the product of
    the marginals): the bot asks for any combination, and a few-shot set shows few of them, so G
    learns to draw each attribute on its own. D's projection scores each attribute separately,
    so it judges a combination it never saw part by part."""
    rows = torch.randint(len(labels), (n,), device=labels.device)
    if not mix:
        return labels[rows]
    own = torch.randint(len(labels), (n, labels.shape[1]), device=labels.device)
    mixed = torch.rand(n, 1, device=labels.device) < mix
    return labels.gather(0, torch.where(mixed, own, rows[:, None].expand_as(own)))


def _check_in_sync(models: dict) -> None:
    """All processes must end with identical weights (gradients were averaged every step)."""
    sums = torch.stack([p.detach().double().sum() for m in models.values() for p in m.parameters()])
    low, high = sums.clone(), sums.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise RuntimeError("data-parallel processes drifted apart (weights differ between ranks)")


def _set_lr(optimizers: dict, factor: float) -> None:
    for opt in optimizers.values():
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"] * factor


def _synced(values: tuple[float, ...], world: int, device: torch.device) -> tuple[float, ...]:
    """Each value's largest over all processes (themselves when alone), so that they all decide alike."""
    if world == 1:
        return values
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(t.tolist())


def _recal_batches(labels: torch.Tensor, z_dim: int, device: torch.device, batch: int = 64):
    """Batches for BN recalibration from a private generator (the training RNG is untouched)."""
    g = torch.Generator().manual_seed(4321)

    def make():
        c = labels[torch.randint(len(labels), (batch,), generator=g).to(labels.device)]
        return torch.randn(batch, z_dim, generator=g).to(device), c

    return make
