"""Few-shot by transfer: what loads and what starts fresh, FreezeD, refusals, strip, resume, the CLI."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from tests.trainer.conftest import write_tiny_set
from trainer import transfer
from trainer.checkpoint import CheckpointError, read_checkpoint
from trainer.data import load_dataset
from trainer.steps import make_task
from trainer.train import ConfigError, make_config, training_loop
from trainer.transfer import check_fits, load_source, start_from, strip, with_source

TINY = dict(res=16, width=4, z_dim=8, embed_dim=4, batch=8, tick_kimg=0.04, grid_kimg=1000.0, threads=1)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def source_gan(tiny_set, tmp_path_factory):
    """A trained (briefly) GAN run on the tiny set: schema color x shape."""
    return training_loop(make_config("gan", data=str(tiny_set), out=str(tmp_path_factory.mktemp("src")), kimg=0.04,
                                     **TINY), progress=False)


@pytest.fixture(scope="module")
def source_vae(tiny_set, tmp_path_factory):
    return training_loop(make_config("vae", data=str(tiny_set), out=str(tmp_path_factory.mktemp("src")), kimg=0.04,
                                     cls_weight=1.0, patch_start_kimg=0.0, **TINY), progress=False)


@pytest.fixture(scope="module")
def other_set(tmp_path_factory):
    """The tiny set's images under another schema: the first two attributes renamed (same shapes), a third added."""
    root = write_tiny_set(tmp_path_factory.mktemp("data") / "other")
    rows = (root / "labels.csv").read_text().splitlines()[1:]
    lines = ["file,tone,form,size"] + [f"{f},{'warm' if c == 'red' else 'cool'},{s},{'big' if i % 4 < 2 else 'small'}"
                                        for i, (f, c, s) in enumerate(r.split(",") for r in rows)]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def _task(kind, data, **kw):
    ds = load_dataset(str(data), 16)
    cfg = make_config(kind, data=str(data), **{**TINY, **kw})
    torch.manual_seed(1)
    task = make_task(cfg, ds.schema.cardinalities, CPU, torch.from_numpy(ds.labels))
    before = {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in task.models.items()}
    return cfg, ds, task, before


def _source(run, name):
    tensors = read_checkpoint(run)[1]
    return {k[len(f"model.{name}."):]: v for k, v in tensors.items() if k.startswith(f"model.{name}.")}


def test_gan_transfer_loads_what_draws_and_starts_the_schema_fresh(source_gan, other_set):
    cfg, ds, task, before = _task("gan", other_set, init_from=str(source_gan))
    report = start_from(task, cfg, ds.schema)
    g_src, d_src = _source(source_gan, "G_ema"), _source(source_gan, "D")
    for name in ("G", "G_ema"):
        state = task.models[name].state_dict()
        for k, v in state.items():
            if k.startswith("embeddings."):  # fresh, though embeddings.0 and .1 have the source's shapes
                assert torch.equal(v, before[name][k]), k
                if k in g_src:
                    assert not torch.equal(v, g_src[k]), k
            elif k == "mapping.0.weight":  # (w, z + 3 x 4) here, (w, z + 2 x 4) in the source
                assert torch.equal(v[:, :8], g_src[k][:, :8]) and torch.equal(v[:, 8:], before[name][k][:, 8:])
            else:
                assert torch.equal(v, g_src[k]), k
    for k, v in task.models["D"].state_dict().items():
        assert torch.equal(v, before["D"][k] if k.startswith("projections.") else d_src[k]), k
    summary = report.summary()
    assert "G: " in summary and "fresh (their meaning is the schema" in summary and "embeddings.0, embeddings.1" in summary
    assert "z columns loaded" in summary and "projections.0, projections.1, projections.2" in summary


def test_classifier_heads_start_fresh_beside_a_transferred_trunk(source_gan, tiny_set):
    cfg, ds, task, before = _task("gan", tiny_set, init_from=str(source_gan), cls_heads=True)
    report = start_from(task, cfg, ds.schema)
    d_src = _source(source_gan, "D")  # a D that classified with its projections: it has no heads
    for k, v in task.models["D"].state_dict().items():
        assert torch.equal(v, before["D"][k] if k.startswith("heads.") else d_src[k]), k
    assert "fresh (the source has no D.heads.1.weight)" in report.summary()
    with pytest.raises(ConfigError, match="--cls-heads is a GAN option"):
        make_config("vae", cls_heads=True, **TINY)


def test_the_same_schema_transfers_everything(source_gan, tiny_set):
    cfg, ds, task, _ = _task("gan", tiny_set, init_from=str(source_gan))
    report = start_from(task, cfg, ds.schema)
    g_src, d_src = _source(source_gan, "G_ema"), _source(source_gan, "D")
    for name, src in (("G", g_src), ("G_ema", g_src), ("D", d_src)):
        assert all(torch.equal(v, src[k]) for k, v in task.models[name].state_dict().items()), name
    assert all(set(groups) == {"loaded"} for groups in report.models.values()), report.summary()


def test_vae_transfer_keeps_trunks_and_starts_heads_fresh(source_vae, other_set):
    cfg, ds, task, before = _task("vae", other_set, init_from=str(source_vae), cls_weight=1.0)
    start_from(task, cfg, ds.schema)
    for name in ("encoder", "D_patch", "prior"):
        src = _source(source_vae, name)
        assert all(torch.equal(v, src[k]) for k, v in task.models[name].state_dict().items()), name
    for name, fresh in (("classifier", "heads."), ("latent_clf", "heads."), ("decoder", "embeddings.")):
        src = _source(source_vae, name)
        for k, v in task.models[name].state_dict().items():
            if k.startswith(fresh):
                assert torch.equal(v, before[name][k]), (name, k)
            elif k != "mapping.0.weight":
                assert torch.equal(v, src[k]), (name, k)


def test_frozen_blocks_stay_as_transferred_while_the_rest_trains(source_gan, other_set):
    cfg, ds, task, _ = _task("gan", other_set, init_from=str(source_gan), freeze_d=1, lr=1e-2, augment="translation")
    report = start_from(task, cfg, ds.schema)
    assert report.frozen == 1 and "first 1 blocks" in report.summary()
    d = task.models["D"]
    blocks = [{k: v.clone() for k, v in b.state_dict().items()} for b in d.blocks()]  # weights and SN vectors
    g = {k: v.clone() for k, v in task.models["G"].state_dict().items()}
    images = torch.from_numpy(ds.images).permute(0, 3, 1, 2).float() / 127.5 - 1
    labels = torch.from_numpy(ds.labels)
    for step in range(3):
        idx = torch.randint(len(images), (8,))
        task.step(images[idx], labels[idx], labels[torch.randint(len(labels), (8,))], 8 * step)
    after = [b.state_dict() for b in d.blocks()]
    assert all(torch.equal(v, blocks[0][k]) for k, v in after[0].items())
    assert all(not torch.equal(v, blocks[1][k]) for k, v in after[1].items())  # the next block trains
    assert any(not torch.equal(v, g[k]) for k, v in task.models["G"].state_dict().items())
    frozen = d.blocks()[0]
    assert not any(p.requires_grad for p in frozen.parameters()) and not any(m.training for m in frozen.children())


def test_misfits_are_refused_naming_the_flag(source_gan, other_set):
    flags = {"init_from": str(source_gan), "res": 32, "width": None, "d_width": 0, "z_dim": None}
    with pytest.raises(ConfigError, match=r"--res 32 does not fit .* --res 16: leave --res out"):
        with_source("gan", flags, ["--res", "--from"])
    filled = with_source("gan", flags, ["--from"])  # not given: the source's
    assert (filled["res"], filled["width"], filled["d_width"], filled["z_dim"], filled["embed_dim"]) == (16, 4, 0, 8, 4)
    assert filled["freeze_d"] == 1  # half of the 3 blocks of a 16 px D
    source = load_source(str(source_gan), "gan")
    for kw, flag in (({"width": 8}, "--width 8"), ({"d_width": 8}, "--d-width 8"), ({"z_dim": 16}, "--z-dim 16")):
        cfg = make_config("gan", **{**TINY, **kw})
        with pytest.raises(ConfigError, match=flag):
            check_fits(cfg, source)
    cfg, ds, task, _ = _task("gan", other_set, init_from=str(source_gan), width=8)
    with pytest.raises(ConfigError, match="--width 8"):
        start_from(task, cfg, ds.schema)
    with pytest.raises(CheckpointError, match="those are gan weights"):
        load_source(str(source_gan), "vae")
    with pytest.raises(ConfigError, match="needs --from"):
        make_config("gan", freeze_d=1, **TINY)
    with pytest.raises(ConfigError, match="3 blocks at 16 px"):
        make_config("gan", freeze_d=3, init_from=str(source_gan), **TINY)


def test_a_shipped_name_that_is_not_installed_says_so(source_gan, tmp_path, monkeypatch):
    assert transfer.WEIGHTS_DIR == Path(transfer.__file__).parent / "weights"
    package_data = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "weights/*" in package_data["trainer"]
    monkeypatch.setattr(transfer, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(CheckpointError, match=r"shipped gan weights are not installed .*moe-default-gan-64.safetensors"):
        load_source("moe-default", "gan")
    strip(source_gan, tmp_path / "moe-default-gan-64.safetensors")
    assert load_source("moe-default", "gan").meta["weights_only"]
    with pytest.raises(CheckpointError, match="not a run folder, a weights file"):
        load_source("no-such-weights", "gan")


def test_strip_writes_weights_only_and_transfers_like_its_run(source_gan, source_vae, other_set, tmp_path):
    path = strip(source_gan, tmp_path / "w" / "gan.safetensors")
    tensors = load_file(path)
    assert {k.split(".")[1] for k in tensors} == {"G_ema", "D"} and all(k.startswith("model.") for k in tensors)
    meta, run_meta = json.loads(path.with_suffix(".json").read_text()), read_checkpoint(source_gan)[0]
    assert meta["weights_only"] and meta["optimizers"] == {} and "budget" not in meta
    assert meta["schema"] == run_meta["schema"] and meta["data"]["fingerprint"] == run_meta["data"]["fingerprint"]
    assert (meta["res"], meta["width"], meta["d_width"], meta["z_dim"]) == (16, 4, 0, 8)
    assert meta["source"] == {"run": source_gan.name, "kimg": run_meta["kimg"], "step": run_meta["step"]}
    states = []
    for spec in (source_gan, path):
        cfg, ds, task, _ = _task("gan", other_set, init_from=str(spec))
        start_from(task, cfg, ds.schema)
        states.append({f"{n}.{k}": v for n, m in task.models.items() for k, v in m.state_dict().items()})
    assert all(torch.equal(v, states[1][k]) for k, v in states[0].items())
    vae = strip(source_vae, tmp_path / "vae.safetensors")
    assert {k.split(".")[1] for k in load_file(vae)} == set(read_checkpoint(source_vae)[0]["models"])
    half = strip(source_gan, tmp_path / "half.safetensors", fp16=True)
    assert half.stat().st_size < 0.6 * path.stat().st_size and load_file(half)["model.G_ema.to_rgb.weight"].dtype == torch.float16
    cfg, ds, task, _ = _task("gan", other_set, init_from=str(half))
    start_from(task, cfg, ds.schema)
    for k, v in task.models["G"].state_dict().items():
        assert v.dtype == states[0][f"G.{k}"].dtype and torch.allclose(v.float(), states[0][f"G.{k}"].float(), atol=1e-3), k


def _moe(*args):
    from moe.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"NO_COLOR": "1"})


def test_cli_trains_from_a_run_folder_and_refuses_misfits(source_gan, other_set, tmp_path, monkeypatch):
    base = ("train", "gan", "--data", other_set, "--from", source_gan, "--out", tmp_path / "runs", "--threads", "1")
    r = _moe(*base, "--dry-run")
    assert r.exit_code == 0, r.output
    cfg = json.loads(r.stdout)
    assert (cfg["res"], cfg["width"], cfg["z_dim"], cfg["freeze_d"], cfg["init_from"]) == (16, 4, 8, 1, str(source_gan))
    r = _moe(*base, "--res", "64", "--dry-run")
    assert r.exit_code == 2 and "--res 64 does not fit" in r.output and "Traceback" not in r.output
    monkeypatch.setattr(transfer, "WEIGHTS_DIR", tmp_path)
    r = _moe("train", "vae", "--from", "moe-default", "--dry-run")
    assert r.exit_code == 2 and "shipped vae weights are not installed" in r.output
    r = _moe(*base, "--kimg", "0.04", "--batch", "8", "--grid-kimg", "1000")
    assert r.exit_code == 0, r.output
    run = Path(r.output.strip().splitlines()[-1].removeprefix("done: "))
    report = json.loads((run / "transfer.json").read_text())
    assert report["freeze_d"] == 1 and "loaded" in report["models"]["G"] and str(source_gan) in report["source"]
    r = _moe("train", "gan", "--resume", run, "--from", source_gan)
    assert r.exit_code == 2 and "would ignore --from" in r.output
    r = _moe("train", "strip", run, "--out", tmp_path / "w.safetensors")
    assert r.exit_code == 0 and "gan at 16 px" in r.output and (tmp_path / "w.json").is_file()


def test_a_few_shot_folder_starts_from_the_shipped_weights_by_itself(source_gan, other_set, tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "WEIGHTS_DIR", tmp_path)
    base = ("train", "gan", "--data", other_set, "--dry-run")
    r = _moe(*base)  # nothing shipped: from scratch, and it says why
    assert r.exit_code == 0 and json.loads(r.stdout)["init_from"] == "" and "from scratch: no trained weights" in r.stderr
    strip(source_gan, tmp_path / "moe-default-gan-64.safetensors")
    assert transfer.shipped("gan") == transfer.Shipped("moe-default", 16, 4, 0, 8) and transfer.shipped("vae") is None
    r = _moe(*base)
    cfg = json.loads(r.stdout)
    assert r.exit_code == 0 and (cfg["init_from"], cfg["res"], cfg["width"], cfg["z_dim"], cfg["freeze_d"]) == (
        "moe-default", 16, 4, 8, 1)
    assert "chosen  from moe-default:" in r.stderr
    r = _moe(*base, "--width", "8")  # a size that does not fit: from scratch, not a refusal
    assert r.exit_code == 0 and json.loads(r.stdout)["init_from"] == "" and "--width 8 does not fit" in r.stderr
    r = _moe(*base, "--from", "none")  # asked for scratch
    assert r.exit_code == 0 and json.loads(r.stdout)["init_from"] == "" and "given   from none" in r.stderr


@pytest.mark.slow
def test_a_transferred_run_resumes_from_its_own_checkpoint_bit_for_bit(source_gan, other_set, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(source_gan, source)
    cfg = dict(data=str(other_set), init_from=str(source), freeze_d=1, cond_ramp_kimg=0.1, cls_weight=1.0, **TINY)
    straight = training_loop(make_config("gan", out=str(tmp_path / "a"), kimg=0.128, **cfg), progress=False)
    first = training_loop(make_config("gan", out=str(tmp_path / "b"), kimg=0.064, **cfg), progress=False)
    shutil.rmtree(source)  # resuming must not need the source any more
    saved = json.loads((first / "config.json").read_text())
    resumed = training_loop(make_config(**{**saved, "kimg": 0.128}), resume=first, progress=False)
    a, b = load_file(straight / "checkpoint.safetensors"), load_file(resumed / "checkpoint.safetensors")
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]
    d_src = _source(source_gan, "D")
    assert torch.equal(b["model.D.features.0.parametrizations.weight.original"],
                       d_src["features.0.parametrizations.weight.original"])  # frozen before and after the resume
    assert not torch.equal(b["model.D.features.2.parametrizations.weight.original"],
                           d_src["features.2.parametrizations.weight.original"])
