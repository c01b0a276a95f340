"""Engine faults under a running bot: onnxruntime runs that raise, a pack half-written while members draw."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from engine.pack import content_hash
from testkit.faults import SHIM_DIR, arm_ort_fault, ort_fault_env
from tests.faults.support import BUSY_MESSAGE, ENGINE_FAILED, create, is_image

pytestmark = pytest.mark.slow


def busy_or_sorry(msg) -> bool:
    """The answer to a draw the engine could not make: ephemeral, busy or try again."""
    return msg.ephemeral and not msg.files and (BUSY_MESSAGE in msg.content or ENGINE_FAILED in msg.content)


async def draw_all(fake, members, **options) -> list:
    itxs = await asyncio.gather(*(fake.slash(m, "avatar", **options) for m in members))
    return [await itx.wait_done(60) for itx in itxs]


async def test_session_that_raises_mid_batch(fake, club, launch, tmp_path):
    members = [fake.add_member(club, f"m{i}") for i in range(8)]
    flag = tmp_path / "ort-fault"
    await launch(pythonpath=(SHIM_DIR,), env=ort_fault_env(flag))
    _, warm = await create(fake, members[0], seed=1)
    assert is_image(warm), warm.content

    arm_ort_fault(flag, times=1)  # the next batch fails, whichever members it holds
    answers = await draw_all(fake, members)
    assert not flag.exists(), "no session ran after the fault was armed"
    failed = [a for a in answers if not is_image(a)]
    assert failed, "the failing batch reached no member"
    assert all(busy_or_sorry(a) for a in failed), [a.content for a in failed]
    assert all(is_image(a) for a in await draw_all(fake, members))  # later ones get images

    arm_ort_fault(flag, times=None)  # a model failing on every run: everyone answered, no one hangs
    assert all(busy_or_sorry(a) for a in await draw_all(fake, members[:4])), "a member got no clear answer"
    flag.unlink()
    assert all(is_image(a) for a in await draw_all(fake, members[:4]))


async def test_half_written_pack_is_refused_then_loaded(fake, club, launch, packs_dir, tiny_pack):
    """A second pack copied into the packs folder file by file (manifest first, a model
    half-written for a while): the bot keeps drawing with the first pack and refuses the
    new one until its last file is complete; then admins can choose it. Beside it, a copy
    whose manifest has a wrong type stays refused and does not hold the new pack back."""
    admin = fake.add_member(club, "root", admin=True)
    members = [fake.add_member(club, f"m{i}") for i in range(3)]
    bot = await launch(watch_s=0.2)  # the watcher looks often: fewer waits
    manifest = json.loads((tiny_pack / "manifest.json").read_text())
    models = {k: v for k, v in manifest["models"].items() if k not in ("encoder", "decoder")}
    manifest.update(name="novae", models=models, content_hash=content_hash(models))
    dest = packs_dir / "novae"
    files = sorted({f for m in models.values() for f in m.values() if isinstance(f, str) and f.endswith(".onnx")})

    def refusals() -> int:
        return sum("novae" in line and "refus" in line for line in bot.log_path.read_text(errors="replace").splitlines())

    async def offered() -> list[str]:
        return [c["value"] for c in await fake.autocomplete(admin, "moe-admin pack", "name", "")]

    async def next_refusal(seen: int) -> int:
        answers = []
        for _ in range(200):  # members draw while the watcher looks
            answers += await draw_all(fake, members)
            if refusals() > seen:
                break
            await asyncio.sleep(0.1)
        assert refusals() > seen, bot.log_tail()
        assert all(is_image(a) for a in answers), [a.content for a in answers if not is_image(a)]
        assert "novae" not in await offered()
        return refusals()

    broken = packs_dir / "broken"
    shutil.copytree(tiny_pack, broken)
    bad = json.loads((tiny_pack / "manifest.json").read_text())
    bad["models"]["generator"]["inputs"] = 5
    (broken / "manifest.json").write_text(json.dumps({**bad, "name": "broken"}))
    dest.mkdir()
    text = json.dumps(manifest)
    (dest / "manifest.json").write_text(text[: len(text) // 2])  # the manifest half-written
    seen = await next_refusal(refusals())
    (dest / "manifest.json").write_text(text)
    seen = await next_refusal(seen)
    data = (tiny_pack / files[0]).read_bytes()
    (dest / files[0]).write_bytes(data[: len(data) // 2])  # a model half-written
    seen = await next_refusal(seen)
    for name in files[1:]:
        shutil.copyfile(tiny_pack / name, dest / name)
    seen = await next_refusal(seen)
    (dest / files[0]).write_bytes(data)  # the last file complete: loaded at the next look
    for _ in range(200):
        if "novae" in await offered():
            break
        await asyncio.sleep(0.1)
    assert "novae" in await offered(), bot.log_tail()
    chosen = await (await fake.slash(admin, "moe-admin pack", name="novae")).wait_done()
    assert "novae" in chosen.content
    _, msg = await create(fake, members[0], seed=3)
    assert is_image(msg) and "gan" in msg.content, msg.content

