"""The evaluation report for people: rich tables on the console and the eval grid (`eval.png`).

Reads the report dict that `trainer.eval.evaluate` returns (the format of `eval.json`); computes nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.preview import labelled_strips

__all__ = ["print_report", "save_grid"]


def save_grid(rows: dict[str, np.ndarray], path: Path, per_row: int = 16) -> None:
    """One labelled strip per entry (16 images a row): generated samples, generated/nearest
    train pairs, and for a VAE held-out / reconstruction / edit."""
    strips = [(name, imgs[i:i + per_row]) for name, imgs in rows.items() for i in range(0, len(imgs), per_row)]
    tile = max(64, strips[0][1].shape[1])  # small images are scaled up to stay visible
    labelled_strips(strips, tile=tile, cols=per_row, label_w=96).save(path)


def _f(v, fmt: str = "{:.3f}") -> str:
    return "—" if v is None else fmt.format(v)


def _ratio(entry: dict) -> str:
    """An accuracy or edit ratio, or why there is none (reports from before the rule carry no
    "judged" key and are shown as they were)."""
    if entry.get("judged", True):
        return _f(entry.get("ratio"))
    return f"not judged ({_why(entry)})"


def _why(entry: dict) -> str:
    return entry.get("why", f"judge reads real images only {100 * entry['real']:.0f}% right")  # older reports: no "why"


def print_report(r: dict, console=None) -> None:
    """The report as rich tables, for a person."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if r["kind"] == "upscaler":  # trainer.sharpness.evaluate_upscaler: the sharpness table is the report
        console.print(f"[bold]{r['run']}[/] (upscaler, {r['res']} -> {r['out_res']} px, kimg {r['kimg']})")
        _print_sharpness(r["sharpness"], console)
        console.print("Targets: " + "  ".join(f"{k}: {'[green]yes[/]' if ok else '[red]no[/]'}"
                                              for k, ok in r["summary"]["targets"].items()))
        return
    g, ref, s = r["generated"], r["reference"], r["summary"]
    src = "EMA generator" if r["kind"] == "gan" else "decoder, z ~ N(0, I)"
    what = f"pack {r['content_hash']}" if "pack" in r else f"kimg {r['kimg']}" + (
        f" in {'+'.join(r['precisions'])}" if r.get("precisions") else "")  # older runs do not record it
    console.print(f"[bold]{r['run']}[/] ({r['kind']}, {r['res']}px, {what}) on {r['data']['name']}: "
                  f"{g['n']} samples from the {src}; judge trained on {r['judge']['n_fit']} images, "
                  f"held-out {r['data']['n_held']}")
    seen = r["data"].get("trained_on")
    if seen and seen["images"]:
        console.print(f"The run trained on {seen['images']} images of its own, {seen['found']} of them in this folder; "
                      f"{seen['held_out_moved']} that the judge held out count as training images here")
    acc = Table(title="Conditional accuracy of the judge (real = held-out; recon, edit: VAE on held-out)")
    blurs = [f"blur σ{b['sigma_px']:.2g}" for b in ref["blur"]]
    for col in ("attribute", "real", "generated", "ratio", *(("recon", "edit", "edit ratio") if "vae" in r else ()),
                *blurs):
        acc.add_column(col, justify="left" if col == "attribute" else "right")
    for name, a in g["accuracy"].items():
        row = [name, _f(a["real"]), _f(a["generated"]), _ratio(a)]
        if "vae" in r:
            e = r["vae"]["edit"]["per_attribute"].get(name, {})
            row += [_f(r["vae"]["reconstruction"]["accuracy"][name]["generated"]), _f(e.get("success")),
                    _ratio(e) if e else "—"]
        acc.add_row(*row, *(_f(b["accuracy"][name]) for b in ref["blur"]))
    console.print(acc)
    if "trained_rows" in g:
        t = g["trained_rows"]
        console.print(f"On the {t['rows']} label rows the run trained on ({t['n']} samples; the table: rows of this "
                      "folder, mostly combinations it never saw), ratio: "
                      + ", ".join(f"{name} {_f(a['ratio']) if a['judged'] else 'not judged'}"
                                   for name, a in t["accuracy"].items()))
    dist = Table(title="Distance to real held-out (judge features; lower is better)")
    for col in ("set", "KID", "± std", "FID"):
        dist.add_column(col, justify="left" if col == "set" else "right")
    dist.add_row("generated", _f(g["kid"]["mean"], "{:.4f}"), _f(g["kid"]["std"], "{:.4f}"), _f(g["fid"], "{:.2f}"))
    dist.add_row("real train (floor)", _f(ref["floor"]["kid"]["mean"], "{:.4f}"),
                 _f(ref["floor"]["kid"]["std"], "{:.4f}"), _f(ref["floor"]["fid"], "{:.2f}"))
    for b in ref["blur"]:
        dist.add_row(f"blurred real, σ={b['sigma_px']:.2g}px", _f(b["kid"]["mean"], "{:.4f}"),
                     _f(b["kid"]["std"], "{:.4f}"), _f(b["fid"], "{:.2f}"))
    console.print(dist)
    d, m = g["diversity"], g["memorisation"]
    console.print(f"Diversity (mean pairwise distance within {d['groups']} groups sharing "
                  f"{', '.join(d['grouping']) or 'nothing'}): generated/real = {_f(d['ratio'])} in judge "
                  f"features, {_f(d['pixel_ratio'])} in pixels; ratio [bold]{_f(s['diversity_ratio'])}[/] (the lower)")
    console.print(f"Nearest training image: generated median {_f(m['nn_generated_median'])} vs held-out "
                  f"{_f(m['nn_held_median'])} (ratio {_f(m['ratio'])}); {100 * m['frac_below_held_p1']:.1f}% of "
                  f"samples closer than the held-out 1st percentile ({_f(m['held_p1'])})")
    if "stray" in g:  # reports before this measure lack it
        st = g["stray"]
        console.print(f"Stray marks (a piece drawn apart from the character): {100 * st['generated']:.1f}% of "
                      f"generated images, {100 * st['real']:.1f}% of real held-out")
    _print_best_of(r, console)
    if "vae" in r:
        v = r["vae"]
        console.print(f"VAE: reconstruction MSE {v['reconstruction']['mse']:.4f}, PSNR "
                      f"{v['reconstruction']['psnr']:.2f} dB; edit success {v['edit']['success']:.3f}, other "
                      f"attributes kept {v['edit']['kept']:.3f} (real {v['edit']['kept_real']:.3f})")
    _print_sharpness(r.get("sharpness"), console)
    marks = "  ".join(f"{k}: {'[green]yes[/]' if ok else '[red]no[/]' if ok is False else '—'}"
                      for k, ok in s["targets"].items())
    regime = f" ({s['regime']} set)" if s.get("regime") else ""  # reports from before the regime's targets lack it
    console.print(f"Targets{regime}: {marks}")
    if "judged_attributes" in s:
        console.print(f"Targets over judged attributes: {', '.join(s['judged_attributes']) or 'none'}"
                      + "".join(f"; {k} not judged ({_why(g['accuracy'][k])})"
                                for k in s.get("unjudged_attributes", {})))


def _print_best_of(r: dict, console) -> None:
    """k=1 beside the discriminator's top-1 of k (paired: the first candidate is the k=1 sample)."""
    from rich.table import Table

    if "best_of" not in r:
        return
    g, b, k = r["generated"], r["best_of"]["generated"], r["best_of"]["k"]
    t = Table(title=f"The discriminator's pick: top-1 of {k} candidates vs k=1 (same first candidate)")
    for col in ("measure", "k=1", f"top-1 of {k}", "change", "± se (paired)"):
        t.add_column(col, justify="left" if col == "measure" else "right")

    def row(name: str, a, c, digits: int = 3, se: float | None = None) -> None:
        fmt = f"{{:.{digits}f}}"
        t.add_row(name, _f(a, fmt), _f(c, fmt), _f(None if a is None or c is None else c - a, f"{{:+.{digits}f}}"),
                  _f(se, fmt))

    for name, a in g["accuracy"].items():
        row(f"accuracy ratio: {name}", a["ratio"], b["accuracy"][name]["ratio"],
            se=b["accuracy_change"][name]["se"] / b["accuracy"][name]["real"] if b["accuracy"][name]["real"] else None)
    row("KID", g["kid"]["mean"], b["kid"]["mean"], 4)
    row("FID", g["fid"], b["fid"], 2)
    row("diversity ratio (features)", g["diversity"]["ratio"], b["diversity"]["ratio"])
    row("diversity ratio (pixels)", g["diversity"]["pixel_ratio"], b["diversity"]["pixel_ratio"])
    row("nearest-train ratio", g["memorisation"]["ratio"], b["memorisation"]["ratio"])
    sc = b["score"]
    row("discriminator score", sc["first_mean"], sc["picked_mean"])
    console.print(t)
    console.print(f"The pick was the k=1 sample itself in {100 * sc['first_wins']:.1f}% of samples "
                  f"(chance: {100 / k:.1f}%)")


def _print_sharpness(sh: dict | None, console) -> None:
    """The 256 px sharpness table (built-in set), or why it was skipped."""
    from rich.table import Table

    if not sh:
        return
    if "skipped" in sh:
        console.print(f"Sharpness at 256 px: skipped ({sh['skipped']})")
        return
    t = Table(title=f"Sharpness at {sh['size']} px vs native {sh['size']} px renders ({sh['n']} held-out; "
                    "detail features; lower KID/FID is better, ratios: 1 = as sharp as native)")
    for col in ("set", "KID", "± std", "FID", "edge ratio", "HF ratio"):
        t.add_column(col, justify="left" if col == "set" else "right")
    rows = (("native renders, half vs half (ceiling)", sh["native"]),
            (f"output {sh.get('generated_res')} px" + (", engine upscale" if sh.get("generated_res") != sh["size"]
                                                        else ""), sh.get("generated")),
            (f"real {sh['reference_res']} px, Lanczos upscale (reference)", sh["lanczos_real"]),
            (f"real {sh['reference_res']} px, through the upscaler", sh.get("upscaler_real")))
    for name, v in ((name, v) for name, v in rows if v is not None):
        t.add_row(name, _f(v["kid"]["mean"], "{:.4f}"), _f(v["kid"]["std"], "{:.4f}"), _f(v["fid"], "{:.2f}"),
                  _f(v["edge_ratio"]), _f(v["hf_ratio"]))
    console.print(t)
