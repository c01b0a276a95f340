"""`moe train eval RUN`: how good is a run, measured against real held-out images.

Everything is measured in the feature space of the judge (`trainer/judge.py`), a small
classifier trained on the run's own labelled data, because no Inception weights can be
downloaded. The report (`RUN/eval.json`, `RUN/eval.png`) holds:

- conditional accuracy: the judge's accuracy on generated images for their intended
  conditions, beside its accuracy on real held-out images, and the ratio;
- KID (primary: unbiased polynomial-kernel MMD^2, Bińkowski et al. 2018, mean and std over
  subsets) and FID (Heusel et al. 2017) against held-out, beside the same for real-train
  images (the floor) and for blurred real-train images (the scale reference);
- intra-condition diversity: mean pairwise distance within groups of images that share a
  condition, generated / real, in judge features and in pixels (16x16); the headline ratio is
  the lower of the two; and a nearest-training-neighbour check;
- stray marks: the share of images with a piece drawn apart from the character
  (`metrics.stray_pieces`), generated beside real held-out; a speck on the background, which
  judge features barely register, shows here;
- for a VAE: reconstruction MSE/PSNR, edit success, and all of the above for prior samples;
- for the built-in set, sharpness at 256 px (`trainer/sharpness.py`): the output upscaled as the
  engine does, and Lanczos-upscaled real 64 px images (the reference), against native renders;
- with `best_of` k > 1 (GAN), all of the generated-sample metrics again for the discriminator's
  pick: k candidates per sample, the first the k=1 sample itself, the one D scores highest for
  its condition kept (what `engine.Engine.best_of` serves), so the two columns are paired.

`evaluate_pack` measures a pack folder the same way, through onnxruntime on its
generator.onnx and discriminator.onnx: what the bot actually serves.

Generated images come from the EMA generator (GAN) or the decoder with z ~ N(0, I) (VAE);
their conditions are random rows of the data's labels (its joint label distribution), with
fixed seeds. Diversity uses a second generated set that mirrors groups of held-out images:
the grouping is the full condition when the held-out set has enough exact matches, else the
most specific attribute subset that does (`choose_grouping`), and each
generated group cycles through its real group's full labels. The memorisation check measures
distances to the judge's train split; the generator saw held-out images too, so a copy of
one of those (a tenth of the data) is not flagged.

An attribute the judge reads right on fewer than 95% of the real held-out images, or on too
few of them to show it (`metrics.judged`: a hundred pictures hold out about 20), is not judged:
its generated/real ratio would measure the judge's guessing, so it is reported as
`"judged": false` with the ratio under `unjudged_ratio` (`ratio` null), and left out of
`accuracy_ratio_min`, `edit_ratio_min` and the targets. Reports written before this rule have
no `judged` key; readers take a missing key as judged.

`quick_scorer` is the small version a run under a time budget scores its snapshots with: a few
hundred samples, the judged accuracy ratios, KID against held-out images beside the blurred
reference, stray marks and diversity, ranked by `metrics.prefer`.

What is evaluated, a run's models or a pack's graphs, comes as plain functions from `trainer/sources.py`.
The metrics themselves are pure functions in `trainer/metrics.py`; `trainer/report.py` prints
the report as tables and draws `eval.png`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from engine.schema import Schema
from trainer.judge import JudgeConfig, TrainedJudge, load_or_train_judge, split_features, to_tensor
from trainer.metrics import (GROUP_CAP, JUDGE_MIN_ACCURACY, MEMORISED, STRAY_EXCESS, choose_grouping, diversity,
                             fid, gaussian_blur, group_ids, judged, kid, nearest_distances,
                             below_p1_by_chance, paired_change, stray_share, targets)
from trainer.report import print_report, save_grid
from trainer.samples import to_uint8
from trainer.sources import EvalError, Source, best_of_sampler, decode, open_run, pack_source, run_source

# print_report lives in trainer.report; it stays importable from here for `moe train eval`
__all__ = ["evaluate", "evaluate_pack", "print_report", "quick_scorer", "run_score", "EvalError", "FORMAT",
           "MAX_BEST_OF", "QUICK_SAMPLES"]

log = logging.getLogger(__name__)

FORMAT = 1
# Gaussian sigmas (px at 64 px, scaled with the resolution) of the blurred references; the
# last is the one the target is judged by (sigma 1 ~ a box blur of radius 1.5 px)
BLUR_SIGMAS_64 = (0.5, 1.0)
MAX_GROUPS = 64  # diversity: groups measured
MAX_BEST_OF = 64  # candidates per sample for --best-of (the engine's largest batch of one call)
QUICK_SAMPLES = 500  # samples of a quick eval (a budgeted run's snapshots)
QUICK_GROUPS = 32  # diversity groups of a quick eval
JUDGED_AT = JUDGE_MIN_ACCURACY  # the judge's real held-out accuracy an attribute needs to be judged


# -- evaluation of a run ------------------------------------------------------------------

def _small(images: np.ndarray, size: int = 16) -> np.ndarray:
    """Pixel-space features for a judge-free diversity check: images box-downsampled to 16x16."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255
    return F.adaptive_avg_pool2d(x, size).flatten(1).double().numpy()


def _accuracy(pred: np.ndarray, target: np.ndarray, ref: _Reference, schema: Schema) -> dict:
    acc = (pred == target).mean(0)
    return {a.name: _judged_ratio({"generated": float(g), "real": float(r)}, float(g / r) if r > 0 else None, why)
            for a, g, r, why in zip(schema.attributes, acc, ref.real_acc, ref.unjudged)}


def _judged_ratio(entry: dict, ratio: float | None, why: str | None) -> dict:
    """entry + "judged" and "ratio"; an attribute the judge cannot judge (`why` says why in words)
    keeps its ratio as "unjudged_ratio"."""
    if why is None:
        return entry | {"judged": True, "ratio": ratio}
    return entry | {"judged": False, "ratio": None, "unjudged_ratio": ratio, "why": why}


def _unjudged(real_acc: np.ndarray, held: int) -> list[str | None]:
    """Per attribute, None where `metrics.judged` judges it, else why not."""
    return [None if ok else f"judge reads real images only {100 * r:.0f}% right" if r < JUDGED_AT else
            f"judge read {100 * r:.0f}% of only {held} held-out images right, too few to show "
            f"{100 * JUDGED_AT:.0f}%; a larger folder with the same attributes can judge it: --data DIR"
            for r, ok in zip(real_acc, judged(real_acc, JUDGED_AT, held=held))]


def _ratio(a: float | None, b: float | None) -> float | None:
    return float(a / b) if a is not None and b not in (None, 0) else None


class _Reference:
    """The real side, computed once per evaluation: judge features of held-out images, of
    all train-split images (nearest neighbours), a train subset (the floor) and its blurs.
    Held-out images the run trained on (`seen`, dataset indices: a few-shot run judged with the
    folder it was picked from) count as train images here: a copy of one is memorised, not held-out."""

    def __init__(self, tj: TrainedJudge, images: np.ndarray, labels: np.ndarray, n: int, seed: int,
                 sigmas: tuple[float, ...], seen: np.ndarray | None = None):
        judge = tj.model
        train_feats, held_feats, held_pred = split_features(tj, images)
        seen_held = np.isin(tj.held_idx, () if seen is None else seen)
        if 2 * seen_held.sum() > len(tj.held_idx):  # too few would be left to compare with
            log.warning("the run trained on %d of the %d held-out images: they stay held-out (a copy of one "
                        "reads as held-out, not memorised)", seen_held.sum(), len(tj.held_idx))
            seen_held[:] = False
        self.held_idx, self.moved = tj.held_idx[~seen_held], int(seen_held.sum())
        self.held_images, self.held_labels = images[self.held_idx], labels[self.held_idx]
        self.train_images = images[np.concatenate([tj.train_idx, tj.held_idx[seen_held]])]
        self.train_feats = np.concatenate([train_feats, held_feats[seen_held]])
        self.held_feats, held_pred = held_feats[~seen_held], held_pred[~seen_held]
        self.real_acc = (held_pred == self.held_labels).mean(0)
        self.unjudged = _unjudged(self.real_acc, len(self.held_idx))  # None: judged
        self.held_nn, _ = nearest_distances(self.held_feats, self.train_feats)
        self.held_stray = stray_share(self.held_images)
        sub = np.random.default_rng(seed).choice(len(self.train_feats), min(n, len(self.train_feats)), replace=False)
        self.floor = {"kid": kid(self.train_feats[sub], self.held_feats, seed=seed),
                      "fid": fid(self.train_feats[sub], self.held_feats), "n": len(sub)}
        self.blur = []  # distances: blurred train subset vs held-out; accuracy: on blurred held-out
        for sigma in sigmas:
            feats, _ = judge.embed(gaussian_blur(self.train_images[sub], sigma))
            _, pred = judge.embed(gaussian_blur(self.held_images, sigma))
            self.blur.append({"sigma_px": sigma, "kid": kid(feats, self.held_feats, seed=seed),
                              "fid": fid(feats, self.held_feats), "accuracy": (pred == self.held_labels).mean(0)})


def _mirrored(members: np.ndarray) -> np.ndarray:
    """Which member of a real group each of its GROUP_CAP generated rows takes the labels of."""
    return np.arange(GROUP_CAP) % len(members)


def _diversity_plan(held_labels: np.ndarray, seed: int,
                    groups: int = MAX_GROUPS) -> tuple[tuple[int, ...], list[np.ndarray], np.ndarray]:
    """Groups of held-out images sharing the most specific available grouping (see
    `choose_grouping`), up to `groups` of them with up to GROUP_CAP members each, and the
    conditions to generate for each group: GROUP_CAP rows cycling through its members' full
    labels, so a generated group varies in the dropped attributes exactly as the real one."""
    grouping = choose_grouping(held_labels)
    ids = group_ids(held_labels, grouping)
    rng = np.random.default_rng(seed)
    eligible = np.flatnonzero(np.bincount(ids) >= 2)
    chosen = rng.permutation(eligible)[:groups]
    members = [np.flatnonzero(ids == g)[:GROUP_CAP] for g in chosen]
    conds = np.concatenate([held_labels[m[_mirrored(m)]] for m in members])
    return grouping, members, conds  # members is never empty: at worst () groups all (>= 4) held-out images


def _group_diversity(feats: np.ndarray, images: np.ndarray, members: list[np.ndarray], held_feats: np.ndarray,
                     held_images: np.ndarray, seed: int) -> tuple[dict, dict]:
    """`metrics.diversity` of generated groups (GROUP_CAP rows each, in `members` order, drawn
    with the labels `_mirrored` names) against the held-out groups `members` indexes, in judge
    features and in pixels (`_small`)."""
    keys_g = np.repeat(np.arange(len(members)), GROUP_CAP)
    origin = np.concatenate([_mirrored(m) for m in members])
    keys_r = np.concatenate([np.full(len(m), k) for k, m in enumerate(members)])
    rows = np.concatenate(members)
    return (diversity(feats, keys_g, held_feats[rows], keys_r, seed=seed, origin_a=origin),
            diversity(_small(images), keys_g, _small(held_images[rows]), keys_r, seed=seed, origin_a=origin))


def _sample_report(gen: Callable[[torch.Tensor, np.ndarray], np.ndarray], ref: _Reference, judge, labels: np.ndarray,
                   schema: Schema, z_dim: int, samples: int, seed: int) -> tuple[dict, dict]:
    """Generate `samples` images whose conditions are random rows of the data's labels (its
    joint label distribution) and score them against the reference; then a separate set for
    diversity (`_diversity_plan`). Returns (report section, images for the grid)."""
    rng, g = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    conds = labels[rng.choice(len(labels), samples)]
    images = gen(torch.randn(samples, z_dim, generator=g), conds)
    feats, pred = judge.embed(images)
    nn_d, nn_i = nearest_distances(feats, ref.train_feats)
    p1, held_med = float(np.percentile(ref.held_nn, 1)), float(np.median(ref.held_nn))
    gen_stray = stray_share(images)
    # diversity: generated groups vs the real held-out groups they mirror
    grouping, members, div_conds = _diversity_plan(ref.held_labels, seed)
    div_images = gen(torch.randn(len(div_conds), z_dim, generator=g), div_conds)
    div, pix = _group_diversity(judge.embed(div_images)[0], div_images, members, ref.held_feats, ref.held_images,
                                seed)
    section = {
        "n": len(images),
        "accuracy": _accuracy(pred, conds, ref, schema),
        "kid": kid(feats, ref.held_feats, seed=seed), "fid": fid(feats, ref.held_feats),
        "diversity": {"generated": div["a"], "real": div["b"], "ratio": div["ratio"], "groups": div["groups"],
                      "per_group": GROUP_CAP, "grouping": [schema.attributes[i].name for i in grouping],
                      "pixel_ratio": pix["ratio"]},
        "stray": {"generated": gen_stray, "real": ref.held_stray, "excess": gen_stray - ref.held_stray},
        "memorisation": {"nn_generated_median": float(np.median(nn_d)), "nn_held_median": held_med,
                         "ratio": _ratio(float(np.median(nn_d)), held_med), "held_p1": p1,
                         "frac_below_held_p1": float((nn_d < p1).mean())},
    }
    closest = np.argsort(nn_d)[:8]
    grid = {"generated": images[:16], "same cond. 1": div_images[:GROUP_CAP],
            "same cond. 2": div_images[GROUP_CAP:2 * GROUP_CAP],
            "nearest train": np.stack([x for i in closest for x in (images[i], ref.train_images[nn_i[i]])])}
    return section, grid


@torch.no_grad()
def _vae_report(encoder, decoder, ref: _Reference, judge, schema: Schema, seed: int, batch: int) -> tuple[dict, dict]:
    """Reconstruction (posterior mean) and edits of held-out images, scored by the judge."""
    x, labels = ref.held_images, ref.held_labels
    mu = torch.cat([encoder(to_tensor(x[i:i + batch]))[0] for i in range(0, len(x), batch)])
    recon = decode(decoder, mu, labels, batch)
    mse = (((recon.astype(np.float64) - x) / 255) ** 2).reshape(len(x), -1).mean(1)  # per image, [0, 1] scale
    psnr = 10 * np.log10(1 / np.maximum(mse, 1e-10))
    _, recon_pred = judge.embed(recon)
    # edit: one attribute (with > 1 value) per image, changed to a random other value
    rng = np.random.default_rng(seed)
    card = np.array(schema.cardinalities)
    editable = np.flatnonzero(card > 1)
    if len(editable) == 0:
        raise EvalError("no attribute has more than one value; nothing to edit")
    attr = editable[rng.integers(len(editable), size=len(x))]
    new = labels.copy()
    rows = np.arange(len(x))
    new[rows, attr] = (labels[rows, attr] + rng.integers(1, card[attr])) % card[attr]
    edited = decode(decoder, mu, new, batch)
    _, pred = judge.embed(edited)
    hit = pred[rows, attr] == new[rows, attr]
    others = np.ones_like(labels, bool)
    others[rows, attr] = False
    edit = {}
    for a in editable:
        m = attr == a
        success = float(hit[m].mean()) if m.any() else None
        edit[schema.attributes[a].name] = _judged_ratio(
            {"success": success, "real": float(ref.real_acc[a]), "n": int(m.sum())},
            _ratio(success, float(ref.real_acc[a])), ref.unjudged[a])
    kept = float((pred == labels)[others].mean())
    real_kept = float(np.broadcast_to(ref.real_acc, labels.shape)[others].mean())
    section = {
        "n": len(x),
        "reconstruction": {"mse": float(mse.mean()), "psnr": float(psnr.mean()),
                           "accuracy": _accuracy(recon_pred, labels, ref, schema)},
        "edit": {"success": float(hit.mean()), "per_attribute": edit,
                 "kept": kept, "kept_real": real_kept, "kept_ratio": _ratio(kept, real_kept)},
    }
    return section, {"held": x[:16], "reconstruction": recon[:16], "edit": edited[:16]}


def evaluate(run_dir: str | Path, *, samples: int = 2000, data: str | None = None, seed: int = 0,
             judge_config: JudgeConfig = JudgeConfig(), batch: int = 250, write: bool = True,
             best_of: int = 1) -> dict:
    """Evaluate a run folder; returns the report (and writes RUN/eval.json + RUN/eval.png).
    `data` overrides the run's recorded training data (same schema required). `best_of` > 1
    also reports the discriminator's top-1 of that many candidates per sample (GAN runs)."""
    run_dir = Path(run_dir)
    _check_counts(samples, best_of)
    run = open_run(run_dir)
    if run.kind == "upscaler":  # no samples to judge: its sharpness at 256 px is its report
        from trainer.sharpness import evaluate_upscaler

        return evaluate_upscaler(run_dir, seed=seed, write=write)
    source = run_source(run_dir, run, data, batch)
    out = (run_dir / "eval.json", run_dir / "eval.png") if write else None
    return _evaluate(source, samples, seed, judge_config, batch, best_of, out)


def evaluate_pack(pack_dir: str | Path, *, samples: int = 2000, data: str | None = None, seed: int = 0,
                  judge_config: JudgeConfig = JudgeConfig(), batch: int = 250, best_of: int = 1,
                  out: Path | None = None, threads: int | None = None) -> dict:
    """Evaluate a pack folder's GAN (generator.onnx, and discriminator.onnx for `best_of`) as
    `evaluate` does a run; writes `out` (JSON) and the grid beside it (`.png`) when given."""
    _check_counts(samples, best_of)
    source = pack_source(Path(pack_dir), data, batch, threads)
    return _evaluate(source, samples, seed, judge_config, batch, best_of,
                     None if out is None else (Path(out), Path(out).with_suffix(".png")))


def _check_counts(samples: int, best_of: int) -> None:
    if samples < 2:
        raise EvalError(f"--samples must be at least 2, got {samples}")
    if not 1 <= best_of <= MAX_BEST_OF:
        raise EvalError(f"--best-of must be from 1 to {MAX_BEST_OF}, got {best_of}")


def _evaluate(source: Source, samples: int, seed: int, judge_config: JudgeConfig, batch: int, best_of: int,
              out: tuple[Path, Path] | None) -> dict:
    from trainer.data import DatasetError, load_dataset, restrict

    t0 = time.perf_counter()
    if best_of > 1 and source.score is None:
        raise EvalError(f"{source.name} has no discriminator to pick the best of {best_of} with (a GAN's D)")
    schema, res, z_dim, spec, recorded_fp = source.schema, source.res, source.z_dim, source.spec, source.recorded_fp
    ds, restricted = load_dataset(spec, res), None
    if ds.schema.fingerprint() != schema.fingerprint():
        try:  # a larger set of the run's attributes (a few-shot run judged with the whole folder)
            ds, restricted = restrict(ds, schema), len(ds)
        except DatasetError as e:
            raise EvalError(f"the data at {spec!r} does not fit the run's schema {schema.names}: {e}; evaluate on the "
                            "data it was trained on, or a larger set with the same attributes and values (--data)") from None
        log.info("judging with %d of the %d images at %s: those whose labels the run's schema has", len(ds), restricted,
                 spec)
    elif recorded_fp and recorded_fp != ds.fingerprint:
        log.warning("data fingerprint %s differs from the run's %s: the images changed since training",
                    ds.fingerprint, recorded_fp)
    if len(ds) < 8:
        raise EvalError(f"{spec}: {len(ds)} images are too few to hold some out for evaluation (need 8)")
    images, labels = np.ascontiguousarray(ds.images), ds.labels
    seen, trained_on, trained_rows = (_seen(source.trained_on, res, images, schema) if source.trained_on
                                      else (None, None, None))
    tj = load_or_train_judge(images, labels, schema.cardinalities, ds.fingerprint, judge_config)
    log.info("scoring the real images: held-out, the train floor, blurred references")
    ref = _Reference(tj, images, labels, samples, seed, tuple(s * res / 64 for s in BLUR_SIGMAS_64), seen)
    if trained_on is not None:
        trained_on["held_out_moved"] = ref.moved
    names = schema.names
    report: dict = {
        "format": FORMAT, "run": source.name, "kind": source.kind, "step": None, "kimg": None, **source.header,
        "res": res, "samples": samples, "seed": seed,
        "data": {"spec": spec, "name": ds.name, "fingerprint": ds.fingerprint,
                 "fingerprint_matches_run": (recorded_fp == ds.fingerprint) if recorded_fp else None,
                 "restricted_from": restricted, "trained_on": trained_on,
                 "n_train": len(ref.train_feats), "n_held": len(ref.held_idx)},
        "judge": {"held_accuracy": dict(zip(names, map(float, ref.real_acc))), "n_fit": tj.info.get("n_train"),
                  "train_seconds": tj.info.get("train_seconds"), "cached": tj.info.get("cached"),
                  "res": tj.model.inner, "best_epoch": tj.info.get("best_epoch"),
                  "config": tj.info.get("config")},
        "reference": {"floor": ref.floor, "blur": [b | {"accuracy": dict(zip(names, map(float, b["accuracy"])))}
                                                   for b in ref.blur]},
    }
    log.info("generating and scoring %d samples", samples)
    section, grid = _sample_report(source.generate, ref, tj.model, labels, schema, z_dim, samples, seed)
    report["generated"] = section
    if trained_rows is not None:
        section["trained_rows"] = _trained_rows(source.generate, tj.model, trained_rows, ref, schema, z_dim,
                                                min(samples, 5 * len(trained_rows)), seed)
    if source.latent_prior is not None:
        section["latent_prior"] = source.latent_prior
    if best_of > 1:
        log.info("drawing %d candidates per sample and keeping the discriminator's top-1", best_of)
        picks: list = []
        picked, pgrid = _sample_report(best_of_sampler(source, best_of, seed, picks), ref, tj.model, labels, schema,
                                       z_dim, samples, seed)
        conds, scores, best, first, kept = picks[0]  # the main samples (the second call drew the diversity set)
        rows = np.arange(len(best))
        hits = [(tj.model.embed(x)[1] == conds) for x in (first, kept)]  # (N, A) judge hits, paired by sample
        change, se = paired_change(*hits)
        picked["accuracy_change"] = {a.name: {"mean": float(m), "se": float(e)}
                                     for a, m, e in zip(schema.attributes, change, se)}
        picked["score"] = {"first_mean": float(scores[:, 0].mean()), "picked_mean": float(scores[rows, best].mean()),
                           "first_wins": float((best == 0).mean())}
        report["best_of"] = {"k": best_of, "generated": picked}
        grid[f"top-1 of {best_of}"] = pgrid["generated"]
    if source.vae is not None:
        report["vae"], vgrid = _vae_report(*source.vae, ref, tj.model, schema, seed, batch)
        grid |= vgrid
    report["sharpness"] = _sharpness(spec, source.generate, labels, ref.held_idx, z_dim, seed, source.upscale, res)
    report["summary"] = _summary(report)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    if out is not None:
        out[0].parent.mkdir(parents=True, exist_ok=True)
        out[0].write_text(json.dumps(report, indent=1))
        save_grid(grid, out[1])
        log.info("wrote %s and %s", *out)
    return report


def _digest(image: np.ndarray) -> bytes:
    return hashlib.blake2b(image.tobytes(), digest_size=16).digest()


def _seen(spec: str, res: int, images: np.ndarray, schema: Schema) -> tuple[np.ndarray | None, dict, np.ndarray | None]:
    """Which of `images` the run trained on (its own data, `spec`, matched pixel for pixel),
    {"spec", "images", "found"} for the report, and the own data's label rows (None when they are
    not in the run's schema)."""
    from trainer.data import DatasetError, load_dataset

    try:
        own = load_dataset(spec, res, progress=False)
    except (DatasetError, OSError) as e:
        log.warning("the run's own data %s cannot be read (%s): memorisation is checked against the judge's "
                    "train split only", spec, e)
        return None, {"spec": spec, "images": None, "found": 0}, None
    digests = set(map(_digest, own.images))
    found = np.flatnonzero([_digest(x) in digests for x in images])
    if len(found) < len(own):
        log.warning("%d of the run's %d training images are not in the judged folder: memorisation of those is "
                    "not checked", len(own) - len(found), len(own))
    rows = own.labels if own.schema.fingerprint() == schema.fingerprint() else None
    return found, {"spec": spec, "images": len(own), "found": int(len(found))}, rows


def _trained_rows(gen: Callable[[torch.Tensor, np.ndarray], np.ndarray], judge, rows: np.ndarray, ref: _Reference,
                  schema: Schema, z_dim: int, n: int, seed: int) -> dict:
    """Accuracy on `n` samples whose conditions cycle through the rows the run trained on, beside the
    main samples' (random rows of the judged folder: for a few-shot run mostly combinations it never
    saw). A value drawn right here and not there was learned only beside the attributes it was shown with."""
    conds = rows[np.arange(n) % len(rows)]
    g = torch.Generator().manual_seed(seed + 1)
    _, pred = judge.embed(gen(torch.randn(n, z_dim, generator=g), conds))
    return {"n": n, "rows": len(rows), "accuracy": _accuracy(pred, conds, ref, schema)}


def _sharpness(spec: str, generate: Callable[[torch.Tensor, np.ndarray], np.ndarray], labels: np.ndarray,
               held_idx: np.ndarray, z_dim: int, seed: int, upscale: Callable[[np.ndarray], np.ndarray] | None,
               res: int) -> dict:
    """Output at 256 px vs native 256 px renders, beside Lanczos-upscaled real 64 px images
    (`trainer/sharpness.py`); only the built-in set can be drawn natively at 256 px. With a
    pack's `upscale`, its output is the whole chain, as the engine serves it."""
    if spec != "builtin":
        return {"skipped": "only the built-in style set can be rendered natively at 256 px"}
    from trainer.sharpness import REFERENCE_RES, sharpness_section

    log.info("measuring sharpness at 256 px against native renders")
    g = torch.Generator().manual_seed(seed + 1)

    def draw(c: np.ndarray) -> np.ndarray:
        out = generate(torch.randn(len(c), z_dim, generator=g), c)
        return out if upscale is None else upscale(out)

    real_upscale = upscale if res == REFERENCE_RES else None  # the upscaler on real images of its input size
    return sharpness_section(draw, labels, held_idx, seed=seed, upscale=real_upscale)


def _summary(r: dict) -> dict:
    """Headline numbers, and the targets a run is judged by (why these: docs/reports/trainer-notes.md)."""
    g = r["generated"]
    ratios = {k: v["ratio"] for k, v in g["accuracy"].items() if v["ratio"] is not None}  # judged attributes only
    worst = min(ratios, key=ratios.get) if ratios else None
    floor, blur = r["reference"]["floor"], r["reference"]["blur"][-1]  # the strongest blur is the reference
    s = {"accuracy_ratio_min": ratios.get(worst), "worst_attribute": worst,
         "judged_attributes": [k for k, v in g["accuracy"].items() if v.get("judged", True)],
         "unjudged_attributes": {k: v["real"] for k, v in g["accuracy"].items() if not v.get("judged", True)},
         "kid": g["kid"]["mean"], "kid_std": g["kid"]["std"], "kid_floor": floor["kid"]["mean"],
         "kid_floor_std": floor["kid"]["std"], "kid_blur": blur["kid"]["mean"], "blur_sigma_px": blur["sigma_px"],
         "kid_vs_blur": _ratio(g["kid"]["mean"], blur["kid"]["mean"]),
         "fid": g["fid"], "fid_floor": floor["fid"], "fid_blur": blur["fid"],
         # the lower of the two: the judge ignores what it was not trained to see and can
         # overrate unnatural images; pixels mostly see colour. A collapsed model fails one.
         "diversity_ratio": _min(g["diversity"]["ratio"], g["diversity"]["pixel_ratio"]),
         "diversity_feature_ratio": g["diversity"]["ratio"], "diversity_pixel_ratio": g["diversity"]["pixel_ratio"],
         "nn_ratio": g["memorisation"]["ratio"], "stray_excess": g["stray"]["excess"],
         "frac_below_held_p1": g["memorisation"]["frac_below_held_p1"],
         "frac_below_held_p1_by_chance": below_p1_by_chance(r["data"]["n_held"])}
    t = targets(_trained_on(r["data"]))
    s["regime"] = t.regime
    s["targets"] = {f"accuracy_ratio_min>={t.accuracy:g}": _ok(s["accuracy_ratio_min"], t.accuracy),
                    f"kid<={t.kid_vs_blur:g}*blur": _at_most(s["kid_vs_blur"], t.kid_vs_blur),
                    f"diversity_ratio>={t.diversity:g}": _ok(s["diversity_ratio"], t.diversity),
                    f"frac_below_held_p1<={MEMORISED:g}*chance":
                        s["frac_below_held_p1"] <= MEMORISED * s["frac_below_held_p1_by_chance"],
                    f"stray_excess<={STRAY_EXCESS:g}": s["stray_excess"] <= STRAY_EXCESS}
    if "best_of" in r:  # the discriminator's picks, beside the plain samples above
        b = r["best_of"]["generated"]
        br = [v["ratio"] for v in b["accuracy"].values() if v["ratio"] is not None]
        s |= {"best_of_k": r["best_of"]["k"], "best_of_accuracy_ratio_min": min(br) if br else None,
              "best_of_kid": b["kid"]["mean"], "best_of_fid": b["fid"],
              "best_of_diversity_ratio": _min(b["diversity"]["ratio"], b["diversity"]["pixel_ratio"])}
    sh = r.get("sharpness", {})
    if "generated" in sh:
        s |= {"sharp_kid": sh["generated"]["kid"]["mean"], "sharp_kid_reference": sh["lanczos_real"]["kid"]["mean"],
              "sharp_edge_ratio": sh["generated"]["edge_ratio"], "sharp_hf_ratio": sh["generated"]["hf_ratio"]}
        s["targets"]["sharp_kid<lanczos_real"] = sh["beats_reference"]
    if "vae" in r:
        e = r["vae"]["edit"]
        er = [v["ratio"] for v in e["per_attribute"].values() if v["ratio"] is not None]
        s |= {"recon_psnr": r["vae"]["reconstruction"]["psnr"], "edit_success": e["success"],
              "edit_ratio_min": min(er) if er else None, "edit_kept": e["kept"]}
        s["targets"][f"edit_ratio_min>={t.accuracy:g}"] = _ok(s["edit_ratio_min"], t.accuracy)
    return s


def run_score(report: dict) -> dict:
    """A run's eval.json as `metrics.prefer` compares it: {"accuracy_ratio_min", "accuracy_ratios",
    "accuracy_target", "kid"}, and "stray_excess", "diversity_ratio" and "diversity_target" when the
    report measured them. The accuracy ratios are over the attributes `metrics.judged` judges from each
    one's real accuracy and the held-out count, also for reports written before the rule or its evidence
    bound. The targets are those of the images the run trained on (`_trained_on`)."""
    data = report.get("data", {})
    g, held = report["generated"], data.get("n_held")
    ratios = [v["ratio"] for v in g["accuracy"].values()
              if v.get("ratio") is not None and judged(v["real"], JUDGED_AT, held=held)]
    t = targets(_trained_on(data))
    extra = {"stray_excess": g["stray"]["excess"]} if "stray" in g else {}
    if "diversity" in g:
        extra["diversity_ratio"] = _min(g["diversity"]["ratio"], g["diversity"].get("pixel_ratio"))
        extra["diversity_target"] = t.diversity
    return {"accuracy_ratio_min": min(ratios) if ratios else None, "accuracy_ratios": ratios,
            "accuracy_target": t.accuracy, "kid": g["kid"]["mean"]} | extra


def _trained_on(data: dict) -> int | None:
    """How many images the evaluated model trained on: its own folder's count where it was judged
    with a larger one, else the judged folder's (the judge's split covers every image); None when
    unknown."""
    trained_on = data.get("trained_on")
    own = trained_on["images"] if trained_on else data.get("n_train", 0) + (data.get("n_held") or 0)
    return own or None


# -- the quick eval of a budgeted run's snapshots ------------------------------------------

def quick_scorer(ds, z_dim: int, device: torch.device, samples: int = QUICK_SAMPLES, seed: int = 0,
                 judge_config: JudgeConfig = JudgeConfig(), batch: int = 250,
                 groups: int = QUICK_GROUPS) -> Callable[[torch.nn.Module], dict]:
    """Load or train the judge of the dataset `ds` now (cached: `moe train eval` reuses it) and
    measure the real side once; returns `score(model)`, which draws `samples` images with fixed
    latents and conditions (random rows of the labels) from `model` (z, c) -> image in [-1, 1],
    and `groups` groups that mirror held-out ones for diversity (as the full eval, fewer), and
    gives {"accuracy_ratio_min", "worst_attribute", "accuracy_ratio", "accuracy_ratios", "judged",
    "kid", "kid_std", "kid_blur", "kid_vs_blur", "stray_excess", "diversity_ratio", "diversity_target",
    "accuracy_target", "n"}, `accuracy_ratios` over the judged attributes only, the diversity ratio the lower
    of judge features and pixels, the targets those for `ds`'s size."""
    images, labels = np.ascontiguousarray(ds.images), ds.labels
    if len(images) < 8:
        raise EvalError(f"{len(images)} images are too few to hold some out for the quick eval (need 8)")
    names = ds.schema.names
    tj = load_or_train_judge(images, labels, ds.schema.cardinalities, ds.fingerprint, judge_config)
    held_images = images[tj.held_idx]
    held_feats, held_pred = tj.model.embed(held_images)
    real_acc = (held_pred == labels[tj.held_idx]).mean(0)
    ok = judged(real_acc, JUDGED_AT, held=len(tj.held_idx))
    rng = np.random.default_rng(seed)
    sub = rng.choice(tj.train_idx, min(samples, len(tj.train_idx)), replace=False)
    blur_feats, _ = tj.model.embed(gaussian_blur(images[sub], BLUR_SIGMAS_64[-1] * images.shape[1] / 64))
    kid_blur = kid(blur_feats, held_feats, seed=seed)["mean"]
    held_stray = stray_share(held_images)
    _, members, div_conds = _diversity_plan(labels[tj.held_idx], seed, groups)
    conds = np.concatenate([labels[rng.choice(len(labels), samples)], div_conds]).astype(np.int64)
    z = torch.randn(len(conds), z_dim, generator=torch.Generator().manual_seed(seed))
    target = targets(len(images))

    @torch.no_grad()
    def score(model: torch.nn.Module) -> dict:
        c = torch.from_numpy(conds)
        out = [to_uint8(model(z[i:i + batch].to(device), c[i:i + batch].to(device)))
               for i in range(0, len(conds), batch)]
        drawn_all = np.concatenate(out)
        feats_all, pred_all = tj.model.embed(drawn_all)
        drawn, feats, pred = drawn_all[:samples], feats_all[:samples], pred_all[:samples]
        ratio = [float(g / r) if r > 0 else None for g, r in zip((pred == conds[:samples]).mean(0), real_acc)]
        mine = {n: v for n, v, j in zip(names, ratio, ok) if j and v is not None}
        worst = min(mine, key=mine.get) if mine else None
        k = kid(feats, held_feats, seed=seed)
        div, pix = _group_diversity(feats_all[samples:], drawn_all[samples:], members, held_feats, held_images, seed)
        return {"accuracy_ratio_min": mine.get(worst), "worst_attribute": worst,
                "accuracy_ratio": dict(zip(names, ratio)), "accuracy_ratios": list(mine.values()),
                "judged": [n for n, j in zip(names, ok) if j],
                "kid": k["mean"], "kid_std": k["std"], "kid_blur": kid_blur,
                "kid_vs_blur": _ratio(k["mean"], kid_blur),
                "stray_excess": stray_share(drawn) - held_stray,
                "diversity_ratio": _min(div["ratio"], pix["ratio"]), "diversity_target": target.diversity,
                "accuracy_target": target.accuracy, "n": samples}

    return score


def _min(*vals: float | None) -> float | None:
    known = [v for v in vals if v is not None]
    return min(known) if known else None


def _ok(v: float | None, at_least: float) -> bool | None:
    return None if v is None else bool(v >= at_least)


def _at_most(v: float | None, limit: float) -> bool | None:
    return None if v is None else bool(v <= limit)
