"""`moe train suite`: does the trainer generalise beyond the set it was tuned on?

For each labelled set of the suite it trains a GAN and a VAE with the command the README gives
an admin, `moe train gan|vae --data DIR --minutes M` and nothing else, evaluates each run with
`moe train eval`, and writes one report (`suite.json`, `suite.md`): per set and model every
attribute's accuracy ratio (or "not judged"), KID and FID beside the real floor and the
blurred reference, diversity, memorisation and the kimg reached (in which step precision), GAN and
VAE side by side.

The sets are split once, here: defaults may be tuned on the `TUNING` sets, and the `HELD_OUT`
sets are for reporting only (nobody looks at them while choosing a default). `lorelei` is an
outside set (`../shared/datasets/lorelei`), skipped with a message where it is absent; the
others are drawn by `trainer/suites.py`. A few-shot set, `<set>-100`, is the first FEW images of
its parent: its runs get the few-shot budget (`few_minutes`), and they are judged with the whole
parent folder (`moe train eval RUN --data PARENT`), as an admin who picked them from it would.

Every run and evaluation is a subprocess (`python -m moe ...`, one thread each by default), so
the suite measures exactly what an admin would run, and `parallel` runs can share the machine.
The judge of each set is trained before its runs, once, so no run spends its budget on it. A
job whose evaluation is already in the output folder is reused: an interrupted suite continues.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TUNING", "HELD_OUT", "SETS", "FEW_SHOT_SETS", "FEW", "KINDS", "LORELEI", "SuiteError", "Job",
           "resolve_sets", "first_images", "run_suite", "summarise", "render_markdown"]

log = logging.getLogger(__name__)

FEW = 100  # images of a few-shot set
TUNING = ("palette", "faces", "faces-100", "lorelei-100", "pets", "pets-100")  # defaults may be fitted to these
# (lorelei-100: the few-shot VAE's Fader weight was; THIN was checked on pets-100)
HELD_OUT = ("lorelei", "critters", "critters-100", "emoji", "emoji-100")  # reported only, never tuned on
SETS = TUNING + HELD_OUT
FEW_SHOT_SETS = {n: n.removesuffix(f"-{FEW}") for n in SETS if n.endswith(f"-{FEW}")}  # few-shot set -> its parent
KINDS = ("gan", "vae")
LORELEI = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "lorelei"


class SuiteError(ValueError):
    """A suite that cannot run as asked (unknown set or kind); the message says which."""


@dataclass
class Job:
    """One model on one set: its folders and, once done, its evaluation (or why it has none)."""

    set: str
    role: str
    kind: str
    data: str
    out: Path  # the --out folder of its run
    minutes: float = 0.0  # its time budget
    judged_with: str | None = None  # the folder its judge learns from when not `data` (a few-shot set's parent)
    run: Path | None = None
    report: dict | None = None
    error: str | None = None
    seconds: float = 0.0


def role(name: str) -> str:
    return "tuning" if name in TUNING else "held-out"


def resolve_sets(names: Sequence[str], *, size: int, lorelei: Path | None = LORELEI,
                 few: int = FEW) -> tuple[dict, dict]:
    """({set: (data folder, parent folder or None)}, {set: why it is skipped}) for the names asked, in
    suite order; constructed sets are written (once) with `size` images, few-shot sets with the first
    `few` of their parent's."""
    from trainer.suites import CONSTRUCTED, ensure_set

    unknown = [n for n in names if n not in SETS]
    if unknown:
        raise SuiteError(f"unknown set(s) {', '.join(unknown)}; the suite's sets are {', '.join(SETS)}")
    found, skipped = {}, {}
    for name in (n for n in SETS if n in names):
        base = FEW_SHOT_SETS.get(name, name)
        if base in CONSTRUCTED:
            data = str(ensure_set(base, size))
        elif lorelei is not None and (Path(lorelei) / "labels.csv").is_file():
            data = str(lorelei)
        else:
            skipped[name] = f"{lorelei}/labels.csv is absent (the shared datasets are not checked out here)"
            continue
        found[name] = (str(first_images(Path(data), few, name)), data) if name in FEW_SHOT_SETS else (data, None)
    return found, skipped


def first_images(folder: Path, n: int, name: str, root: Path | None = None) -> Path:
    """A folder `name` of the first `n` labelled images of `folder` (its labels.csv rows in order),
    written once (atomically) under `<cache>/suites/first`, keyed by that labels file's bytes."""
    from trainer.data import cache_dir

    labels = (folder / "labels.csv").read_text().splitlines(keepends=True)
    if len(labels) - 1 < n:
        raise SuiteError(f"{folder} has {len(labels) - 1} labelled images; a few-shot set of {n} needs more")
    key = hashlib.sha256("".join(labels).encode()).hexdigest()[:10]
    out = (root or cache_dir() / "suites" / "first") / f"{key}-{n}" / name  # runs are named after the folder
    if (out / "labels.csv").is_file():
        return out
    tmp = out.parent / f".{name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for row in csv.DictReader(labels[:n + 1]):
        (tmp / row["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / row["file"], tmp / row["file"])
    (tmp / "labels.csv").write_text("".join(labels[:n + 1]))
    try:
        os.replace(tmp, out)
    except OSError:  # another process wrote it first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _find_run(out: Path) -> Path | None:
    runs = sorted(p for p in out.glob("*") if (p / "checkpoint.json").is_file()) if out.is_dir() else []
    return runs[-1] if runs else None


def _run_job(job: Job, threads: int, extra: Sequence[str], samples: int, logs: Path, python: str) -> Job:
    """Train (unless a finished run with an evaluation is there) and evaluate one job."""
    t0 = time.monotonic()
    run = _find_run(job.out)
    if run is not None and (run / "eval.json").is_file():
        job.run, job.report = run, json.loads((run / "eval.json").read_text())
        log.info("%s %s: reusing %s", job.set, job.kind, run)
        return job
    logfile = logs / f"{job.set}-{job.kind}.log"
    with open(logfile, "a") as f:
        def call(*args: str) -> bool:
            cmd = [python, "-m", "moe", *args]
            f.write(f"$ {' '.join(cmd)}\n")
            f.flush()
            return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode == 0

        if run is None:
            log.info("%s %s: training for %g minutes", job.set, job.kind, job.minutes)
            if not call("train", job.kind, "--data", job.data, "--minutes", f"{job.minutes:g}", "--threads",
                        str(threads), "--out", str(job.out), *extra):
                job.error = f"training failed (see {logfile})"
        run = _find_run(job.out)
        if job.error is None and run is None:
            job.error = f"training wrote no checkpoint (see {logfile})"
        if job.error is None:
            log.info("%s %s: evaluating %s", job.set, job.kind, run)
            judge = ("--data", job.judged_with) if job.judged_with else ()
            if call("train", "eval", str(run), *judge, "--threads", str(threads), "--samples", str(samples), "--json"):
                job.run, job.report = run, json.loads((run / "eval.json").read_text())
            else:
                job.run, job.error = run, f"evaluation failed (see {logfile})"
    job.seconds = round(time.monotonic() - t0, 1)
    return job


def _prepare_judge(data: str, judged_with: str | None, res: int, threads: int) -> None:
    """Train (or find cached) the judge the set's evaluations use now, so no run's budget pays for
    it: on `judged_with` restricted to the set's labels when given (as `moe train eval --data`)."""
    import torch

    from trainer.data import load_dataset, restrict
    from trainer.judge import load_or_train_judge

    torch.set_num_threads(threads)
    ds = load_dataset(data, res, progress=False)
    if judged_with:
        ds = restrict(load_dataset(judged_with, res, progress=False), ds.schema)
    load_or_train_judge(ds.images, ds.labels, ds.schema.cardinalities, ds.fingerprint)


def run_suite(out: Path, minutes: float, *, few_minutes: float = 20.0, sets: Sequence[str] = SETS,
              kinds: Sequence[str] = KINDS, parallel: int = 1, threads: int = 1, size: int | None = None,
              few: int = FEW, res: int = 64, extra: Sequence[str] = (), samples: int = 2000,
              lorelei: Path | None = LORELEI, python: str = sys.executable,
              echo: Callable[[str], None] = print) -> dict:
    """Run the suite into `out` and write `out/suite.json` and `out/suite.md`; returns the summary.
    Runs on few-shot sets get `few_minutes`, the others `minutes`. `size`, `few`, `res` other than
    64 and `extra` (further `moe train` flags) are for tests with tiny budgets; the suite proper
    runs the default command."""
    from trainer.suites import SIZE

    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise SuiteError(f"--kinds takes a comma list of {', '.join(KINDS)}, not {','.join(kinds) or 'nothing'}")
    if minutes <= 0 or few_minutes <= 0 or parallel < 1 or threads < 1:
        raise SuiteError("--minutes and --few-shot-minutes must be > 0, --parallel and --threads at least 1")
    out = Path(out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    found, skipped = resolve_sets(sets, size=size or SIZE, lorelei=lorelei, few=few)
    for name, why in skipped.items():
        echo(f"skipping {name}: {why}")
    extra = (*extra, *(("--res", str(res)) if res != 64 else ()))
    for name, (data, parent) in found.items():
        echo(f"{name} ({role(name)}): judge for {data}" + (f", judged with {parent}" if parent else ""))
        _prepare_judge(data, parent, res, threads)
    jobs = [Job(name, role(name), kind, data, out / "runs" / f"{name}-{kind}",
                few_minutes if parent else minutes, parent)
            for name, (data, parent) in found.items() for kind in kinds]
    t0 = time.monotonic()

    def work(job: Job) -> Job:
        echo(f"{job.set} {job.kind}: start")
        done = _run_job(job, threads, extra, samples, out / "logs", python)
        echo(f"{job.set} {job.kind}: {done.error or 'done'} ({done.seconds / 60:.1f} min)")
        return done

    with ThreadPoolExecutor(max_workers=parallel) as pool:  # threads only wait for their subprocesses
        jobs = list(pool.map(work, jobs))
    summary = summarise(jobs, skipped, minutes=minutes, few_minutes=few_minutes, res=res, extra=list(extra),
                        seconds=round(time.monotonic() - t0, 1))
    (out / "suite.json").write_text(json.dumps(summary, indent=1))
    (out / "suite.md").write_text(render_markdown(summary))
    for name, e in summary["sets"].items():
        for kind, m in e["models"].items():
            missed = _missed(m.get("targets"))  # a job that failed has none
            if missed is not None:
                echo(f"{name} {kind}: " + (f"misses {', '.join(missed)}" if missed else "meets every target"))
    echo(f"wrote {out / 'suite.md'} and {out / 'suite.json'}")
    return summary


# -- the report --------------------------------------------------------------------------------

def _model(job: Job) -> dict:
    """What the report keeps of one job's eval.json."""
    if job.report is None:
        return {"run": str(job.run) if job.run else None, "error": job.error}
    r = job.report
    g, s, ref = r["generated"], r["summary"], r["reference"]
    blur = ref["blur"][-1]
    attrs = {}
    for name, a in g["accuracy"].items():
        attrs[name] = {"real": a["real"], "generated": a["generated"], "judged": a.get("judged", True),
                       "ratio": a["ratio"] if a.get("judged", True) else None}
    return {
        "run": str(job.run), "kimg": r.get("kimg"), "precisions": r.get("precisions"),
        "attributes": attrs, "accuracy_ratio_min": s.get("accuracy_ratio_min"),
        "worst_attribute": s.get("worst_attribute"),
        "kid": g["kid"]["mean"], "kid_std": g["kid"]["std"], "kid_floor": ref["floor"]["kid"]["mean"],
        "kid_blur": blur["kid"]["mean"], "blur_sigma_px": blur["sigma_px"], "kid_vs_blur": s.get("kid_vs_blur"),
        "fid": g["fid"], "fid_floor": ref["floor"]["fid"], "fid_blur": blur["fid"],
        "diversity": s.get("diversity_ratio"), "diversity_pixel": s.get("diversity_pixel_ratio"),
        "diversity_feature": s.get("diversity_feature_ratio"),
        "nn_ratio": s.get("nn_ratio"), "frac_below_held_p1": s.get("frac_below_held_p1"),
        "stray_excess": s.get("stray_excess"),
        "targets": s.get("targets"),
        "judge": {"res": r["judge"].get("res"), "train_seconds": r["judge"].get("train_seconds"),
                  "held_accuracy": r["judge"]["held_accuracy"]},
    }


def summarise(jobs: Sequence[Job], skipped: dict, **header) -> dict:
    """The suite's JSON report: per set, its role and each model's numbers; the skipped sets."""
    sets: dict = {}
    for job in jobs:
        entry = sets.setdefault(job.set, {"role": job.role, "data": job.data, "judged_with": job.judged_with,
                                          "minutes": job.minutes, "models": {}})
        entry["models"][job.kind] = _model(job)
    return {"format": 1, **header, "tuning": list(TUNING), "held_out": list(HELD_OUT), "sets": sets,
            "skipped": skipped}


def _f(v, fmt: str = "{:.3f}") -> str:
    return "—" if v is None else fmt.format(v)


def _kimg(m: dict) -> str:
    """kimg and the step's precision (fp32 on a CPU without bf16 instructions sees fewer images per minute)."""
    return _f(m["kimg"], "{:.1f}") + (f" ({'+'.join(m['precisions'])})" if m.get("precisions") else "")


def _missed(targets: dict | None) -> list[str] | None:
    """The targets a model missed (those of its set's regime: `metrics.targets`); None where its report has none."""
    return None if targets is None else [k for k, ok in targets.items() if ok is False]


def _missed_cell(missed: list[str] | None) -> str:
    return "—" if missed is None else ", ".join(f"`{k}`" for k in missed) or "none"


def render_markdown(s: dict) -> str:
    """The report for people: a headline table, then one table per set with GAN and VAE side by side."""
    kinds = [k for k in KINDS if any(k in e["models"] for e in s["sets"].values())]
    few = [bool(e.get("judged_with")) for e in s["sets"].values()]
    per_run = f"{s.get('minutes'):g} minutes per run"
    if few and all(few):
        per_run = f"{s['few_minutes']:g} minutes per run (few-shot sets)"
    elif any(few):
        per_run += f" ({s['few_minutes']:g} on few-shot sets)"
    lines = [f"# Generalisation suite: {per_run}", "",
             "Each model trained by `moe train gan|vae --data DIR --minutes M` "
             f"(nothing else{', plus ' + ' '.join(s['extra']) if s.get('extra') else ''}) and scored by "
             "`moe train eval`. Accuracy: generated / real held-out, by a judge trained on the set; an attribute the "
             "judge reads right on under 95% of real held-out images, or on too few of them to show it, is "
             "*not judged*. *Targets missed*: those of `moe train eval` for the set's size (few-shot or thousands). "
             + (f"A few-shot set (`<set>-{FEW}`) is the first {FEW} images of its set, and its runs are judged with "
                "the whole set (`moe train eval RUN --data SET`). " if any(few) else "")
             + f"Tuning sets: {', '.join(s['tuning'])}; held-out sets (never tuned on): {', '.join(s['held_out'])}.",
             ""]
    for name, why in s.get("skipped", {}).items():
        lines += [f"- **{name}** skipped: {why}"]
    if s.get("skipped"):
        lines.append("")
    lines += ["| set | role | model | kimg | lowest ratio (attribute) | KID / blur | diversity | "
              "below held-out p1 | targets missed |", "|---|---|---|---|---|---|---|---|---|"]
    for name, e in s["sets"].items():
        for kind in kinds:
            m = e["models"].get(kind)
            if m is None:
                continue
            if "error" in m:
                lines.append(f"| {name} | {e['role']} | {kind} | — | {m['error']} | — | — | — | — |")
                continue
            lines.append(f"| {name} | {e['role']} | {kind} | {_kimg(m)} | "
                         f"{_f(m['accuracy_ratio_min'])} ({m['worst_attribute'] or 'none judged'}) | "
                         f"{_f(m['kid_vs_blur'])} | {_f(m['diversity'])} | {_f(m['frac_below_held_p1'], '{:.1%}')} | "
                         f"{_missed_cell(_missed(m.get('targets')))} |")
    for name, e in s["sets"].items():
        models = {k: e["models"][k] for k in kinds if k in e["models"] and "error" not in e["models"][k]}
        judged = f"; judged with `{e['judged_with']}`" if e.get("judged_with") else ""
        minutes = f"; {e['minutes']:g} minutes per run" if e.get("minutes") else ""
        lines += ["", f"## {name} ({e['role']})", "", f"Data: `{e['data']}`{judged}{minutes}", ""]
        if not models:
            lines.append("No model finished: " + "; ".join(f"{k}: {m['error']}" for k, m in e["models"].items()))
            continue
        judge = next(iter(models.values()))["judge"]
        at = f" at {judge['res']} px" if judge["res"] else ""
        lines += [f"Judge{at}: real held-out accuracy "
                  + ", ".join(f"{k} {v:.3f}" for k, v in judge["held_accuracy"].items()), "",
                  "| measure | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]

        def row(label: str, cell: Callable[[dict], str]) -> None:
            lines.append(f"| {label} | " + " | ".join(cell(m) for m in models.values()) + " |")

        row("kimg (step precision)", _kimg)
        first = next(iter(models.values()))
        for attr in first["attributes"]:
            a = first["attributes"][attr]
            label = f"{attr} (real {a['real']:.2f})"
            row(label, lambda m, attr=attr: _f(m["attributes"][attr]["ratio"]) if m["attributes"][attr]["judged"]
                else f"not judged ({_f(m['attributes'][attr]['generated'], '{:.2f}')} generated)")
        row("KID (floor / blur)", lambda m: f"{_f(m['kid'], '{:.4f}')} ({_f(m['kid_floor'], '{:.4f}')} / "
                                           f"{_f(m['kid_blur'], '{:.4f}')})")
        row("FID (floor / blur)", lambda m: f"{_f(m['fid'], '{:.1f}')} ({_f(m['fid_floor'], '{:.1f}')} / "
                                           f"{_f(m['fid_blur'], '{:.1f}')})")
        row("diversity (pixels / features)", lambda m: f"{_f(m['diversity_pixel'], '{:.2f}')} / "
                                                     f"{_f(m['diversity_feature'], '{:.2f}')}")
        row("nearest-train ratio; below held-out p1", lambda m: f"{_f(m['nn_ratio'], '{:.2f}')}; "
                                                              f"{_f(m['frac_below_held_p1'], '{:.1%}')}")
        row("stray marks, share of pictures more than real", lambda m: _f(m.get("stray_excess"), "{:+.1%}"))
    return "\n".join(lines) + "\n"
