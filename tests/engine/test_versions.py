"""Several versions of one pack name side by side: one entry per (name, content hash), the
newest version draws new avatars, a recipe draws only with the version it records, and a
recipe whose version is gone is refused with a message naming it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from engine import Engine, UnknownPack
from engine.pack import content_hash, newest_pack
from engine.versions import newest_key, version_key


def install(src, packs_dir, folder: str, *, name: str = "tiny", version: str, generator_only: bool = False):
    """A copy of `src` at packs_dir/folder with the manifest's name and version changed; a
    generator-only copy has another content hash (its model list differs)."""
    dst = shutil.copytree(src, packs_dir / folder)
    m = json.loads((dst / "manifest.json").read_text())
    m.update(name=name, version=version)
    if generator_only:
        m["models"] = {"generator": m["models"]["generator"]}
        m["content_hash"] = content_hash(m["models"])
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def test_semantic_version_order_with_the_content_hash_breaking_ties():
    order = ["junk", "0.9.0", "1.0.0-rc.1", "1.0.0", "1.2.0", "1.10.0", "2.0.0"]
    assert sorted(reversed(order), key=version_key) == order
    assert newest_key("1.0.0", "bb") > newest_key("1.0.0", "aa") > newest_key("0.9.9", "ff")


def test_newest_pack_is_the_highest_version_of_that_name_broken_folders_skipped(packs_dir, tiny_pack_src, tmp_path):
    install(tiny_pack_src, packs_dir, "tiny@0.10.0", version="0.10.0", generator_only=True)
    install(tiny_pack_src, packs_dir, "other@9.0.0", name="other", version="9.0.0")
    other = tmp_path / "more"
    install(tiny_pack_src, other, "tiny@0.9.0", version="0.9.0")
    (packs_dir / "broken").mkdir()
    (packs_dir / "broken" / "manifest.json").write_text("{not json")
    assert newest_pack([packs_dir, other], "tiny").path == packs_dir / "tiny@0.10.0"
    assert newest_pack([other], "tiny").manifest["version"] == "0.9.0"
    assert newest_pack([packs_dir], "nothing") is None


async def test_versions_side_by_side_newest_draws_new_avatars_recipes_keep_theirs(packs_dir, tiny_pack_src):
    install(tiny_pack_src, packs_dir, "tiny@0.0.2", version="0.0.2", generator_only=True)
    async with Engine([packs_dir], watch_s=None, tune_batch=False) as eng:
        assert eng.refused == {}
        old_hash = eng.pack_versions["tiny"][1].content_hash
        assert [p.manifest["version"] for p in eng.pack_versions["tiny"]] == ["0.0.2", "0.0.1"]
        assert eng.packs["tiny"].manifest["version"] == "0.0.2" and not eng.packs["tiny"].has_vae
        [new] = await eng.generate("tiny", seed=3)
        assert new.recipe.pack_hash == eng.packs["tiny"].content_hash[:8]
        assert eng.pack_of(new.recipe) is eng.packs["tiny"]
        # a recipe of the older version (a VAE one, which the newer lacks) still draws with it
        old_recipe = new.recipe.with_(pack_hash=old_hash[:8], model="vae")
        again = await eng.redraw(eng.recipe(old_recipe.to_code()))
        assert again.recipe.pack_hash == old_hash[:8] and again.recipe.model == "vae"
        assert eng.pack_of(old_recipe).manifest["version"] == "0.0.1"  # its schema and sizes, not the newest's
        [rr] = await eng.reroll(old_recipe, seed=4)
        assert rr.recipe.pack_hash == old_hash[:8]
        assert (await eng.edit(old_recipe, eyes="big")).recipe.pack_hash == old_hash[:8]
        assert all(v.recipe.pack_hash == old_hash[:8] for v in await eng.vary(old_recipe, n=2, seed=1))
        with pytest.raises(Exception, match="same pack and version"):
            await eng.blend(old_recipe.with_(model="gan"), new.recipe)
        m = eng.metrics()["packs"]
        assert set(m) == {"tiny", f"tiny@{old_hash[:8]}"}


async def test_hot_reload_adds_and_removes_a_version_and_names_the_removed_one(packs_dir, tiny_pack_src):
    async with Engine([packs_dir], watch_s=None, tune_batch=False) as eng:
        [first] = await eng.generate("tiny", seed=5)
        old = eng._registry.loaded["tiny"]
        install(tiny_pack_src, packs_dir, "tiny@1.0.0", version="1.0.0", generator_only=True)
        report = await eng.reload()
        assert report["loaded"] == ["tiny"] and eng.packs["tiny"].manifest["version"] == "1.0.0"
        assert not old.retired  # the older version keeps serving its recipes
        again = await eng.redraw(first.recipe)
        np.testing.assert_array_equal(again.image, first.image)
        shutil.rmtree(packs_dir / "tiny")  # the admin removes 0.0.1
        report = await eng.reload()
        assert report["removed"] == ["tiny"] and [p.manifest["version"] for p in eng.pack_versions["tiny"]] == ["1.0.0"]
        await old.idle.wait()
        with pytest.raises(UnknownPack, match=r"drawn with tiny 0\.0\.1, which is no longer installed on this bot") as e:
            await eng.redraw(first.recipe)
        assert (e.value.reason, e.value.pack, e.value.version) == ("retired", "tiny", "0.0.1")  # for the bot's words
        with pytest.raises(UnknownPack, match="no longer installed"):
            eng.recipe(first.code)
        [r] = await eng.generate("tiny", seed=5)  # new avatars: the remaining version
        assert r.recipe.pack_hash == eng.packs["tiny"].content_hash[:8]


async def test_a_recipe_of_a_version_never_seen_names_its_hash(packs_dir):
    async with Engine([packs_dir], watch_s=None, tune_batch=False) as eng:
        [r] = await eng.generate("tiny", seed=5)
        with pytest.raises(UnknownPack, match=r"drawn with tiny \(content 0badf00d\)"):
            await eng.redraw(r.recipe.with_(pack_hash="0badf00d"))


async def test_the_same_version_in_two_folders_serves_from_one(packs_dir, tiny_pack_src):
    install(tiny_pack_src, packs_dir, "tiny@0.0.1", version="0.0.1")  # same content as packs/tiny
    async with Engine([packs_dir], watch_s=None, tune_batch=False) as eng:
        assert len(eng.pack_versions["tiny"]) == 1
        assert "already served from" in eng.refused[str(packs_dir / "tiny@0.0.1")]
