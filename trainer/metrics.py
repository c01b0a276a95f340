"""Evaluation metrics: small pure functions on feature arrays and images.

KID (Bińkowski et al. 2018) and FID (Heusel et al. 2017) between two feature sets, a
Gaussian blur for the blurred reference, intra-group diversity and the grouping it uses,
nearest-neighbour distances for the memorisation check, the top-1 pick among scored candidates
(best-of-k sampling), two edge-sharpness statistics on images (mean gradient magnitude,
high-frequency energy), marks drawn apart from the character (`stray_pieces`), which
attributes the judge can judge, and the one score that ranks snapshots and runs (`prefer`).
No I/O, no models: the run evaluation (`trainer/eval.py`, `trainer/sharpness.py`) feeds them features and images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from trainer.defaults import regime

__all__ = ["kid", "fid", "gaussian_blur", "group_ids", "choose_grouping", "diversity", "nearest_distances",
           "top1", "pick_top1", "paired_change", "judged", "prefer", "describe",
           "luminance", "gradient_magnitude", "high_freq_energy", "stray_pieces", "stray_share", "MIN_GROUPS",
           "GROUP_CAP", "JUDGE_MIN_ACCURACY", "JUDGE_MIN_BOUND", "KID_TIE_MARGIN", "STRAY_EXCESS", "DIVERSE",
           "FEW_SHOT_DIVERSE", "MEMORISED", "Targets", "targets", "below_p1_by_chance"]

MIN_GROUPS = 16  # diversity: fewest groups of >= 2 real held-out images a grouping must give
GROUP_CAP = 12  # diversity: images per group (real: at most; generated: exactly)
JUDGE_MIN_ACCURACY = 0.95  # a judge that reads an attribute on real images less often cannot judge it
JUDGE_MIN_BOUND = 0.9  # ... nor one whose held-out accuracy has a 95% lower bound (Wilson) under this
KID_TIE_MARGIN = 0.02  # accuracy ratios closer than this are a tie, which KID breaks
STRAY_EXCESS = 0.05  # clean: at most this share of generated images more than real ones have stray marks
DIVERSE = 0.8  # diverse: generated images vary within a condition at least this much of what real ones do
FEW_SHOT_DIVERSE = 0.6  # ... on a few-shot set, whose target for variety is lower
MEMORISED = 3.0  # not memorised: samples below held-out p1 at most this many times what chance puts there
DRAWN_AT = 48  # stray pieces: a pixel this far from the background colour (any channel, of 255) is drawn


def kid(a: np.ndarray, b: np.ndarray, subsets: int = 50, subset_size: int = 1000, seed: int = 0) -> dict:
    """Kernel Inception Distance: unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3,
    averaged over random subsets (Bińkowski et al. 2018). Returns {"mean", "std", ...}."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature arrays must be (N, D) with the same D, got {a.shape} and {b.shape}")
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(a)} and {len(b)}")
    rng, d = np.random.default_rng(seed), a.shape[1]
    vals = np.empty(subsets)
    for s in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        off = m * (m - 1)
        vals[s] = ((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean())
    return {"mean": float(vals.mean()), "std": float(vals.std()), "subset_size": m, "subsets": subsets}


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017).
    tr sqrt(S_a S_b) is computed as the sum of sqrt eigenvalues of sqrt(S_a) S_b sqrt(S_a),
    a symmetric PSD matrix, so no complex square roots arise."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"feature arrays must be (N>=2, D) with the same D, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ s_b @ root_a), 0, None)).sum()
    return float(max(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * cross, 0.0))


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """uint8 NHWC -> uint8 NHWC blurred with a separable Gaussian (edges replicated)."""
    r = max(1, math.ceil(3 * sigma))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma**2))
    k = (k / k.sum()).repeat(3, 1, 1)  # (3, 1, K)
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k[:, :, None, :], groups=3)  # along W
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k[:, :, :, None], groups=3)  # along H
    return x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def group_ids(labels: np.ndarray, attrs: tuple[int, ...]) -> np.ndarray:
    """Row -> index of its value combination over the attributes `attrs` (all 0 for ())."""
    if not attrs:
        return np.zeros(len(labels), np.int64)
    return np.unique(labels[:, list(attrs)], axis=0, return_inverse=True)[1].reshape(-1)


def choose_grouping(labels: np.ndarray, min_groups: int = MIN_GROUPS) -> tuple[int, ...]:
    """The most specific set of attribute indices whose value combinations group `labels`
    usefully: at least `min_groups` groups of >= 2 rows, or groups of >= 2 holding at least
    half the rows. All attributes when exact matches are that common, else drop, one at a
    time, the attribute whose removal gives the most such groups (ties: the one with more
    values). May end at () = one group, the whole set."""
    card = labels.max(0) + 1

    def groups(at: tuple[int, ...]) -> tuple[int, int]:  # (groups of >= 2, rows in them)
        counts = np.bincount(group_ids(labels, at))
        return int((counts >= 2).sum()), int(counts[counts >= 2].sum())

    def useful(at: tuple[int, ...]) -> bool:
        n, rows = groups(at)
        return n >= min_groups or (n >= 1 and 2 * rows >= len(labels))

    attrs = tuple(range(labels.shape[1]))
    while attrs and not useful(attrs):
        attrs = max((tuple(x for x in attrs if x != a) for a in attrs),
                    key=lambda at: (groups(at)[0], card[[a for a in attrs if a not in at][0]]))
    return attrs


def _mean_pairwise(x: np.ndarray, origin: np.ndarray) -> float:
    """Mean distance over the pairs of rows whose `origin` differs, from the differences themselves
    (a group is a dozen rows), so identical rows are exactly 0 apart on every CPU."""
    i, j = np.triu_indices(len(x), 1)
    keep = origin[i] != origin[j]
    return float(np.linalg.norm(x[i[keep]] - x[j[keep]], axis=1).mean())


def diversity(feats_a: np.ndarray, keys_a: np.ndarray, feats_b: np.ndarray, keys_b: np.ndarray,
              cap: int = GROUP_CAP, seed: int = 0, origin_a: np.ndarray | None = None) -> dict:
    """Mean pairwise distance within groups (rows sharing a key), for set a and set b, over
    the keys that have >= 2 rows in both, each group weighted equally; ratio = a / b.

    `origin_a` says, per row of a, which row of its b group it mirrors (was generated with the
    labels of); by default every row is its own. Pairs of a with the same origin are left out,
    as b has no pair of one image with itself: where the grouping leaves an attribute free (a
    group of two faces with two different hairs), two images drawn with the same labels differ
    less than the real pair, and counting them would read as too little variety."""
    rng = np.random.default_rng(seed)
    origins = {"a": np.arange(len(keys_a)) if origin_a is None else origin_a, "b": np.arange(len(keys_b))}
    per = {}
    for name, keys in (("a", keys_a), ("b", keys_b)):
        groups: dict = {}
        for i, k in enumerate(map(tuple, keys.reshape(len(keys), -1))):
            groups.setdefault(k, []).append(i)
        per[name] = {k: v for k, v in groups.items() if len(set(origins[name][v])) >= 2}
    shared = sorted(set(per["a"]) & set(per["b"]))
    if not shared:
        return {"a": None, "b": None, "ratio": None, "groups": 0}
    means = {}
    for name, feats in (("a", feats_a), ("b", feats_b)):
        vals = []
        for k in shared:
            idx = per[name][k]
            idx = rng.choice(idx, cap, replace=False) if len(idx) > cap else np.asarray(idx)
            vals.append(_mean_pairwise(feats[idx], origins[name][idx]))
        means[name] = float(np.mean(vals))
    ratio = means["a"] / means["b"] if means["b"] > 0 else None
    return {"a": means["a"], "b": means["b"], "ratio": ratio, "groups": len(shared)}


def nearest_distances(query: np.ndarray, ref: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, (L2 distance to its nearest ref row, that row's index)."""
    dist, arg = np.empty(len(query)), np.empty(len(query), np.int64)
    r2 = (ref**2).sum(1)
    for i in range(0, len(query), chunk):
        q = query[i:i + chunk]
        d2 = (q**2).sum(1)[:, None] + r2[None] - 2 * q @ ref.T
        arg[i:i + chunk] = d2.argmin(1)
        dist[i:i + chunk] = np.sqrt(np.clip(d2[np.arange(len(q)), arg[i:i + chunk]], 0, None))
    return dist, arg


def top1(scores: np.ndarray) -> np.ndarray:
    """(N, K) candidate scores -> (N,) index of each row's highest score, the first on ties
    (as `np.argmax`, which `engine.Engine.best_of` ranks by too)."""
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] < 1:
        raise ValueError(f"scores must be (N, K) with K >= 1, got {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    return scores.argmax(1)


def pick_top1(candidates: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep the best-scored of each row's K candidates (rejection sampling with the
    discriminator as the critic, Azadi et al. 2019): candidates (N, K, ...), scores (N, K) ->
    (the kept (N, ...), their indices (N,))."""
    if candidates.shape[:2] != np.shape(scores):
        raise ValueError(f"candidates {candidates.shape[:2]} and scores {np.shape(scores)} differ in (N, K)")
    best = top1(scores)
    return candidates[np.arange(len(best)), best], best


def paired_change(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the mean change from `before` to `after` over paired rows (the same sample
    drawn two ways) and its standard error: (N, A) -> ((A,), (A,)). On 0/1 hits, a change
    of about two standard errors or more is more than chance."""
    if before.shape != after.shape or before.ndim != 2 or len(before) < 2:
        raise ValueError(f"expected two (N>=2, A) arrays of the same shape, got {before.shape} and {after.shape}")
    d = np.asarray(after, np.float64) - np.asarray(before, np.float64)
    return d.mean(0), d.std(0, ddof=1) / np.sqrt(len(d))


def judged(real_accuracy, at_least: float = JUDGE_MIN_ACCURACY, held: int | None = None) -> np.ndarray:
    """Which attributes the judge can judge: those it reads right on at least `at_least` of
    the real held-out images. Below that, a generated/real accuracy ratio measures the judge's
    guessing, not the generator, so it must not count towards a run's score or targets. Given
    the number of `held` images, also only those whose accuracy's 95% Wilson lower bound is at
    least JUDGE_MIN_BOUND: all 20 of a hundred pictures' held-out read right is no evidence of
    0.95 (a judge that reads 0.85 does so one time in 26), while 300 held out at 0.95 passes."""
    acc = np.asarray(real_accuracy, np.float64)
    if held is None:
        return acc >= at_least
    z = 1.96
    centre = (acc + z * z / (2 * held)) / (1 + z * z / held)
    spread = z * np.sqrt(acc * (1 - acc) / held + z * z / (4 * held ** 2)) / (1 + z * z / held)
    return (acc >= at_least) & (centre - spread >= JUDGE_MIN_BOUND)


def prefer(a, b, margin: float = KID_TIE_MARGIN) -> bool:
    """The one score that ranks two snapshots of a run, or two runs on the same data: True when
    `a` beats `b`. Each is a mapping with `accuracy_ratio_min` (the lowest generated/real judge
    accuracy ratio over the judged attributes; None when none is judged), `kid` (against held-out
    real images, lower is better) and optionally `accuracy_ratios` (every judged attribute's ratio),
    `stray_excess` (the share of generated images with stray marks minus the real share) and
    `diversity_ratio` (generated/real variety within a condition, the lower of judge features and
    pixels) with `diversity_target` (the ratio its training set asks for: `targets(images).diversity`),
    and `accuracy_target` (the lowest ratio it asks for: `targets(images).accuracy`); scores from
    before them lack them. The ratios are compared lowest first: the higher lowest ratio wins, and
    where the lowest are within `margin` of each other the next lowest decide, and so on (an
    attribute that neither draws then hides no gain in the others). Ratios all within `margin` (or
    none judged on either side) are a tie, broken first by the accuracy target (a lowest ratio that
    reaches it beats one below it; the stricter target where the two differ), then by cleanliness (an
    excess within STRAY_EXCESS beats one above it), then by variety (a diversity ratio of at least
    the target beats one below it; DIVERSE where neither score names one), then by the lower KID,
    by more than the larger `kid_std` of the two (KID's spread over its subsets, where a score has
    it: a few-shot set's quick score measures KID against some twenty held-out images, and most of
    its differences are noise); a full tie keeps `b` (the incumbent).
    Conditions come first because a model that ignores them is useless to the bot however realistic
    it looks, and one that follows them as well as its set asks for beats one just short of that
    whatever the rest says; specks on the background come next because judge features barely see
    them and members do; then variety, because KID over the whole set barely sees a model that draws
    fewer kinds of picture per condition, and a reroll shows it at once; KID prefers the more
    realistic of the rest."""
    ra, rb = _ranked(a), _ranked(b)
    if bool(ra) != bool(rb):
        return bool(ra)  # a score over judged attributes beats none at all
    for x, y in zip(ra, rb):
        if abs(x - y) > margin:
            return x > y

    def asked(key: str, default: float | None) -> float | None:  # the stricter of the two scores' targets
        return max((s[key] for s in (a, b) if s.get(key) is not None), default=default)

    accurate, diverse = asked("accuracy_target", None), asked("diversity_target", DIVERSE)
    tie_breaks = (("accuracy_ratio_min", lambda v: accurate is None or v >= accurate),
                  ("stray_excess", lambda v: v <= STRAY_EXCESS), ("diversity_ratio", lambda v: v >= diverse))
    for key, passes in tie_breaks:  # a score that lacks the measure leaves its tie to the next one
        va, vb = a.get(key), b.get(key)
        if va is not None and vb is not None and passes(va) != passes(vb):
            return passes(va)
    noise = max(a.get("kid_std") or 0.0, b.get("kid_std") or 0.0)
    return b["kid"] - a["kid"] > noise


@dataclass(frozen=True)
class Targets:
    """What a model must reach, by the regime of the set it trained on (why these:
    docs/reports/trainer-notes.md, "Evaluation targets")."""
    regime: str
    accuracy: float  # every judged attribute's generated/real accuracy ratio at least this
    diversity: float  # the diversity ratio at least this
    kid_vs_blur: float  # KID at most this share of the blurred real images' KID


_TARGETS = {"large": Targets("large", 0.9, DIVERSE, 0.5), "few-shot": Targets("few-shot", 0.6, FEW_SHOT_DIVERSE, 1.0)}


def targets(images: int | None) -> Targets:
    """The targets of a model trained on `images` pictures: a few-shot set's (`defaults.regime`)
    are lower, as a hundred pictures show less of each condition; those of thousands when the
    count is unknown."""
    return _TARGETS["large" if images is None else regime(images)]


def below_p1_by_chance(held: int) -> float:
    """The share of samples drawn like `held` held-out images expected nearer the training images
    than the held-out images' 1st percentile (`np.percentile`'s, at rank r = 0.01 (held - 1) from
    0): (r + 1) / (held + 1), as a new draw falls below the k-th smallest of n with chance k / (n + 1)
    (exact at whole ranks, close between them). The fewer held out, the more fall below by chance."""
    return (0.01 * (held - 1) + 1) / (held + 1)


def _ranked(score) -> list[float]:
    """The judged attributes' accuracy ratios, lowest first (only the lowest in scores from before the list)."""
    ratios = score.get("accuracy_ratios")
    if ratios is None:
        ratios = [] if score.get("accuracy_ratio_min") is None else [score["accuracy_ratio_min"]]
    return sorted(ratios)


def describe(score) -> str:
    """A score as `prefer` reads it, for a log line or a message: the lowest judged accuracy ratio and
    the diversity ratio (each with its target where the score names one), KID and the stray-mark excess."""
    def asks(key: str) -> str:
        return "" if score.get(key) is None else f" (its set asks for {score[key]:.1f})"

    ratio = score.get("accuracy_ratio_min")
    ratio = "- (none judged)" if ratio is None else f"{ratio:.3f}{asks('accuracy_target')}"
    text = f"lowest judged accuracy ratio {ratio}, KID {score['kid']:.4f}"
    if score.get("stray_excess") is not None:
        text += f", stray marks on {100 * score['stray_excess']:+.1f}% of pictures vs real"
    if score.get("diversity_ratio") is not None:
        text += f", diversity {score['diversity_ratio']:.2f} of real{asks('diversity_target')}"
    return text


def luminance(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float (N, H, W) luma in [0, 1] (Rec. 601 weights)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float() / 255
    return x @ torch.tensor([0.299, 0.587, 0.114])


def gradient_magnitude(images: np.ndarray, chunk: int = 64) -> np.ndarray:
    """Mean gradient magnitude of each image's luma (central differences, per pixel, [0, 1]
    scale): (N,) float64. Blur lowers it; an outline drawn crisply raises it."""
    out = []
    for i in range(0, len(images), chunk):
        y = luminance(images[i:i + chunk])
        gx = (y[:, 1:-1, 2:] - y[:, 1:-1, :-2]) / 2
        gy = (y[:, 2:, 1:-1] - y[:, :-2, 1:-1]) / 2
        out.append(torch.sqrt(gx**2 + gy**2).mean((1, 2)).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def high_freq_energy(images: np.ndarray, cutoff: float = 0.25, chunk: int = 64) -> np.ndarray:
    """Spectral power of each image's luma above `cutoff` of the Nyquist frequency (radially),
    per pixel: (N,) float64. At 256 px, cutoff 0.25 is exactly the detail a 64 px image cannot
    hold, so an upscaled 64 px image keeps only what its filter's overshoot makes."""
    out = []
    for i in range(0, len(images), chunk):
        y = luminance(images[i:i + chunk])
        h, w = y.shape[1:]
        power = torch.fft.rfft2(y - y.mean((1, 2), keepdim=True), norm="ortho").abs() ** 2
        fy = torch.fft.fftfreq(h)[:, None] * 2  # in units of Nyquist
        fx = torch.fft.rfftfreq(w)[None, :] * 2
        high = torch.sqrt(fx**2 + fy**2) > cutoff
        weight = torch.where(fx > 0, 2.0, 1.0)  # rfft: the columns 1.. stand for two halves of the spectrum
        out.append(((power * weight)[:, high].sum(1) / (h * w)).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def stray_pieces(images: np.ndarray, drawn_at: int = DRAWN_AT, min_px: int = 2, chunk: int = 256) -> np.ndarray:
    """Pieces drawn apart from the character, per uint8 NHWC image: (N,) int. The background
    colour is the median of the border; pixels farther from it than `drawn_at` in any channel are
    drawn, and 8-connected drawn pixels form pieces. The largest piece is the character; every other
    of at least `min_px` pixels with a pixel beyond it counts. Beyond is where the character has no
    pixel on both sides, neither in the row nor in the column: eyes drawn within a face whose skin
    (or hair) is near the background's colour are pieces of their own, but within the character, not
    apart. A speck on the background is one; so is a detail the data really draws apart from the
    character, which is why generated images are compared with real."""
    out = []
    for i in range(0, len(images), chunk):
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + chunk])).short()
        n, h, w, _ = x.shape
        border = torch.cat([x[:, 0], x[:, -1], x[:, 1:-1, 0], x[:, 1:-1, -1]], 1)
        drawn = (x - border.median(1).values[:, None, None]).abs().amax(-1) > drawn_at  # (n, h, w)
        # label propagation: each drawn pixel takes the largest label among its drawn neighbours
        # until nothing changes; labels start as pixel numbers (exact in float32 below 2^24)
        drawn = drawn.flatten(1)  # (n, h * w)
        label = torch.where(drawn, torch.arange(1, h * w + 1, dtype=torch.float32), 0.0)
        while True:
            spread = F.max_pool2d(label.view(n, 1, h, w), 3, 1, 1).flatten(1)
            # pointer jumping: a label names a pixel of the same piece whose label is at least as large,
            # so taking that one's label is also a step towards the piece's largest, across the piece
            # in few rounds rather than one pixel per round along a long stroke
            spread = torch.where(drawn, spread.gather(1, (spread.long() - 1).clamp(min=0)), 0.0)
            if torch.equal(spread, label):
                break
            label = spread
        ids = (label.long() + torch.arange(n)[:, None] * (h * w + 1)).flatten()
        sizes = torch.bincount(ids, minlength=n * (h * w + 1)).view(n, -1)
        sizes[:, 0] = 0  # not drawn
        char = ((label == sizes.argmax(1)[:, None]) & drawn).view(n, h, w)  # the largest piece
        beyond = ~(_between(char, 1) | _between(char, 2))
        reach = torch.bincount(ids[beyond.flatten()], minlength=n * (h * w + 1)).view(n, -1)  # pixels beyond, per piece
        out.append(((sizes >= min_px) & (reach > 0)).sum(1).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _between(mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Where `mask` has a pixel at or before, and at or after, each position along `dim`."""
    return (mask.cumsum(dim) > 0) & (mask.flip(dim).cumsum(dim).flip(dim) > 0)


def stray_share(images: np.ndarray) -> float:
    """The share of images with at least one stray piece (`stray_pieces`)."""
    return float((stray_pieces(images) > 0).mean()) if len(images) else 0.0
