"""`Engine`: the asyncio service the bot and `moe generate` call.

    async with Engine(packs_dirs=[...]) as eng:
        [res] = await eng.generate("moe-default", {"style": "cat"}, seed=7)
        png = await eng.render_png(res, size=256)

Every result carries a `Recipe` that redraws it bit-for-bit on the same provider: a recipe
is drawn only by the pack version whose content hash it records (several versions of a
pack are installed side by side), and when that version is gone it is refused with
`UnknownPack`, never drawn by another. New avatars use the newest version of a pack.
Methods with `n` return a list of results; the others return one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from engine.errors import EngineError, InvalidRecipe, UnknownPack
from engine.image import png_bytes, to_rgb_array
from engine.latents import materialize, seed_draws
from engine.pack import Pack
from engine.recipe import MAX_SEED, Recipe, Seed, Slerp, Upload, Vary, pack_id_of
from engine.registry import BatchOptions, Loaded, Registry
from engine.sessions import choose_providers
from engine.versions import RELEASED, pack_order

__all__ = ["Engine", "Result", "LatentStore", "MemoryLatentStore"]

log = logging.getLogger(__name__)
MAX_N = 64


class LatentStore(Protocol):
    async def get(self, id: str) -> np.ndarray | None: ...
    async def put(self, id: str, z: np.ndarray) -> None: ...


class MemoryLatentStore:
    """The default latent store: a dict (the bot passes a SQLite-backed one)."""

    def __init__(self) -> None:
        self.data: dict[str, np.ndarray] = {}

    async def get(self, id: str) -> np.ndarray | None:
        return self.data.get(id)

    async def put(self, id: str, z: np.ndarray) -> None:
        self.data[id] = np.array(z, dtype=np.float32)


@dataclass(frozen=True, eq=False)
class Result:
    image: np.ndarray  # (H, W, 3) uint8: what members see (the pack's output resolution)
    recipe: Recipe
    score: float | None = None  # discriminator score (best_of)
    small: np.ndarray | None = None  # the generator's own picture when the pack upscales it, else None

    @property
    def drawn(self) -> np.ndarray:
        """The picture at the pack resolution, before any upscaler (what the discriminator and encoder see)."""
        return self.image if self.small is None else self.small

    @property
    def code(self) -> str:
        return self.recipe.to_code()


def _check_seed(seed: int | None) -> int:
    if seed is None:
        return secrets.randbelow(MAX_SEED + 1)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed <= MAX_SEED:
        raise EngineError(f"seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return int(seed)


def _check_n(n: int) -> int:
    if not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise EngineError(f"n must be from 1 to {MAX_N}, got {n!r}")
    return n


def _check_fits(recipe: Recipe, pack: Pack) -> None:
    """A recipe's conditions (and model) must fit the installed version of its pack."""
    card = pack.schema.cardinalities
    for cond in (recipe.cond, recipe.cond_b):
        if cond is not None and (len(cond) != len(card) or any(i >= c for i, c in zip(cond, card))):
            raise InvalidRecipe(f"this recipe does not fit pack {pack.name!r} {pack.manifest.get('version', '')}",
                                reason="mismatch", pack=pack.name, version=str(pack.manifest.get("version", "")))
    if recipe.model == "vae" and not pack.has_vae:
        raise EngineError(f"pack {pack.name!r} has no VAE model")


class Engine:
    def __init__(self, packs_dirs: Sequence[Path | str], *, max_batch: int = 64, max_wait_ms: float = 0.0,
                 queue_size: int = 1024, timeout_s: float = 10.0, providers: str = "auto",
                 default_pack: str = "moe-default", latent_store: LatentStore | None = None,
                 watch_s: float | None = 2.0, threads: int | None = None, metrics_log_s: float | None = 300.0,
                 tune_batch: bool = True, precision: str = "fp32"):
        self.providers = choose_providers(providers)
        if precision not in ("fp32", "fp16", "auto"):
            raise ValueError(f"precision must be fp32, fp16 or auto, got {precision!r}")
        options = BatchOptions(max_batch, max_wait_ms / 1e3, queue_size, timeout_s, tune_batch, precision)
        self._registry = Registry(packs_dirs, self.providers, threads, options)
        self._default = default_pack
        self.latent_store: LatentStore = latent_store if latent_store is not None else MemoryLatentStore()
        self.watch_s, self.metrics_log_s = watch_s, metrics_log_s
        self._tasks: list[asyncio.Task] = []
        self._started = time.monotonic()

    @classmethod
    def from_settings(cls, settings, **overrides) -> Engine:
        """Build from `moe.settings.Settings` (keyword overrides win)."""
        kw = dict(max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms, queue_size=settings.queue_size,
                  timeout_s=settings.request_timeout_s, providers=settings.providers,
                  default_pack=settings.default_pack, watch_s=settings.watch_s or None)
        kw.update(overrides)
        return cls(settings.pack_dirs(), **kw)

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> Engine:
        report = await self._registry.reload()
        if not self._registry.loaded:
            log.warning("no model pack loaded from %s (refused: %s)", [str(d) for d in self._registry.dirs],
                        report["refused"] or "none")
        loop = asyncio.get_running_loop()
        if self.watch_s:
            self._tasks.append(loop.create_task(self._watch(), name="engine-watch"))
        if self.metrics_log_s:
            self._tasks.append(loop.create_task(self._log_metrics(), name="engine-metrics"))
        return self

    async def close(self) -> None:
        """Stop watching; finish every request already queued; stop the worker threads."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._registry.close()

    async def __aenter__(self) -> Engine:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def reload(self) -> dict:
        """Load new/changed packs now (the watcher does this every `watch_s`); see Registry.reload."""
        return await self._registry.reload()

    async def _watch(self) -> None:
        failing = None  # the last failure, logged in full once rather than at every tick
        while True:
            await asyncio.sleep(self.watch_s)
            try:
                report = await self._registry.reload()
            except Exception as e:  # a packs folder that cannot be listed; bad packs are refused inside reload
                if repr(e) != failing:
                    log.exception("pack watcher: reload failed (logged again only when the error changes)")
                failing = repr(e)
                continue
            failing = None
            if report["loaded"] or report["removed"]:
                log.info("packs reloaded: %s", report)

    async def _log_metrics(self) -> None:
        last: dict[tuple[str, str], tuple] = {}
        while True:
            await asyncio.sleep(self.metrics_log_s)
            for pack, models in self._registry.metrics().items():
                for model, m in models.items():
                    line = (m["requests"], m["ok"], m["failed"], m["busy"], m["timeouts"], m["crashes"])
                    if line != last.get((pack, model)):
                        log.info("%s/%s: %d requests, %d ok, %d failed, %d busy, %d timeouts, %d collector crashes, "
                                 "mean batch %s, queue %d, p50 %s ms, p99 %s ms", pack, model, *line, m["mean_batch"],
                                 m["queue_depth"], m["latency_ms"]["p50"], m["latency_ms"]["p99"])
                    last[(pack, model)] = line

    # -- packs ------------------------------------------------------------------------------
    @property
    def packs(self) -> dict[str, Pack]:
        """{name: the newest installed version}: what new avatars are drawn with."""
        return {name: lp.pack for name, lp in self._registry.loaded.items()}

    @property
    def pack_versions(self) -> dict[str, list[Pack]]:
        """{name: every installed version, newest first}; recipes draw with the one they record."""
        out = {}
        for name, vs in sorted(self._registry.versions.items()):
            out[name] = sorted((lp.pack for lp in vs.values()), key=pack_order, reverse=True)  # loaded[name] first
        return out

    @property
    def default_pack(self) -> str | None:
        """The configured default when installed, else the first installed pack, else None."""
        loaded = self._registry.loaded
        if self._default in loaded:
            return self._default
        return min(loaded) if loaded else None

    @property
    def refused(self) -> dict[str, str]:
        """Pack folders refused and not tried again until their files change: {folder: one-line reason}."""
        return dict(self._registry.refused)

    @contextmanager
    def _lease(self, pack: str | None = None, *, recipe: Recipe | None = None) -> Iterator[Loaded]:
        """The loaded pack one call uses, held until the call ends: a reload sends new calls
        to the new version and retires this one only when no lease holds it. `pack` None
        means the default pack; a name means its newest version; with `recipe`, exactly the
        version whose content hash the recipe records, checked to fit it."""
        pack_hash = None
        if recipe is not None:
            name, pack_hash = self._pack_of(recipe), recipe.pack_hash
        elif (name := pack or self.default_pack) is None:
            dirs = ", ".join(str(d) for d in self._registry.dirs)
            raise UnknownPack(f"no model pack is installed (looked in {dirs})", reason="none")
        lp = self._registry.acquire(name, pack_hash)
        try:
            if recipe is not None:
                _check_fits(recipe, lp.pack)
            yield lp
        finally:
            lp.release()

    def _pack_of(self, recipe: Recipe) -> str:
        if not isinstance(recipe, Recipe):
            raise InvalidRecipe(f"expected a Recipe, got {type(recipe).__name__}")
        name = self._registry.by_id.get(recipe.pack_id)
        if name is None:
            for n, h in RELEASED:  # a released version of a pack no longer installed at all
                if h == recipe.pack_hash and pack_id_of(n) == recipe.pack_id:
                    raise self._registry.gone(n, h)
            raise UnknownPack("this avatar was made with a pack that is not installed here")
        return name

    def pack_of(self, recipe: Recipe) -> Pack:
        """The installed pack version a recipe draws with (its schema words the recipe's
        conditions); UnknownPack when that version is not installed."""
        return self._registry.get_version(self._pack_of(recipe), recipe.pack_hash).pack

    @staticmethod
    def _recipe(lp: Loaded, model: str, latent, cond, cond_b=None, mix=0.0) -> Recipe:
        p = lp.pack
        return Recipe(p.pack_id, p.content_hash[:8], model, latent, tuple(cond), cond_b, mix, pack=p.name)

    # -- drawing ----------------------------------------------------------------------------
    async def _draw(self, lp: Loaded, recipes: list[Recipe], zs: np.ndarray | None = None) -> list[Result]:
        """Run the generator (gan) or decoder (vae) on recipes sharing one model: one request. With an
        upscaler in the pack the same batch call runs it on the pictures (`Result.image` upscaled,
        `Result.small` the generator's own)."""
        if zs is None:
            zs = np.stack([await materialize(r.latent, lp.pack.z_dim, self.latent_store.get) for r in recipes])
        cond = np.array([r.cond for r in recipes], dtype=np.int64)
        cond_b = np.array([r.cond_b if r.cond_b is not None else r.cond for r in recipes], dtype=np.int64)
        mix = np.array([[r.mix] for r in recipes], dtype=np.float32)
        model = "decoder" if recipes[0].model == "vae" else "generator"
        images, *small = await lp.batchers[model].submit({"z": zs, "cond": cond, "cond_b": cond_b, "mix": mix})
        return [Result(images[i], r, None, small[0][i] if small else None) for i, r in enumerate(recipes)]

    async def generate(self, pack: str | None = None, conditions: Mapping[str, str | None] | None = None,
                       seed: int | None = None, n: int = 1, model: str | None = None) -> list[Result]:
        """n avatars with seeds seed..seed+n-1 (random seed if None); attributes left unset
        (or None) get their default or a choice drawn from each result's seed. `model` None is
        the pack's default model (`Pack.default_model`); the recipes record the one drawn."""
        seed, n = _check_seed(seed), _check_n(n)
        with self._lease(pack) as lp:
            return await self._generate(lp, conditions, seed, n, model)

    async def _generate(self, lp: Loaded, conditions, seed: int, n: int, model: str | None) -> list[Result]:
        p = lp.pack
        model = p.default_model if model is None else model
        if model not in ("gan", "vae") or (model == "vae" and not p.has_vae):
            raise EngineError(f"model must be gan{' or vae' if p.has_vae else ''}, got {model!r}")
        recipes, zs = [], np.empty((n, p.z_dim), np.float32)
        for i in range(n):
            s = (seed + i) & MAX_SEED
            zs[i], draws = seed_draws(s, p.z_dim, len(p.schema))
            recipes.append(self._recipe(lp, model, Seed(s), p.schema.complete(conditions, draws)))
        return await self._draw(lp, recipes, zs)

    async def redraw(self, recipe: Recipe) -> Result:
        """Draw a recipe (e.g. one decoded from a button's code)."""
        with self._lease(recipe=recipe) as lp:
            return (await self._draw(lp, [self._recipe(lp, recipe.model, recipe.latent, recipe.cond,
                                                        recipe.cond_b, recipe.mix)]))[0]

    async def reroll(self, recipe: Recipe, n: int = 1, seed: int | None = None) -> list[Result]:
        """Same conditions (and model), new seeds."""
        seed, n = _check_seed(seed), _check_n(n)
        with self._lease(recipe=recipe) as lp:
            recipes = [self._recipe(lp, recipe.model, Seed((seed + i) & MAX_SEED), recipe.cond, recipe.cond_b,
                                    recipe.mix) for i in range(n)]
            return await self._draw(lp, recipes)

    async def vary(self, recipe: Recipe, strength: float = 0.3, n: int = 4, seed: int | None = None) -> list[Result]:
        """n nearby avatars: z' = normalize(z + strength * eps), eps from variation seeds seed..seed+n-1."""
        seed, n = _check_seed(seed), _check_n(n)
        with self._lease(recipe=recipe) as lp:
            recipes = [self._recipe(lp, recipe.model, Vary(recipe.latent, (seed + i) & MAX_SEED, strength),
                                    recipe.cond, recipe.cond_b, recipe.mix) for i in range(n)]
            return await self._draw(lp, recipes)

    async def edit(self, recipe: Recipe, /, **changes: str) -> Result:
        """Same latent, new attribute values: the character keeps its identity."""
        return (await self.edits(recipe, [changes]))[0]

    async def edits(self, recipe: Recipe, changes: Sequence[Mapping[str, str]]) -> list[Result]:
        """One `edit` per mapping of `changes`, drawn together in one request (a character
        sheet: the same character in every value of an attribute)."""
        _check_n(len(changes))
        with self._lease(recipe=recipe) as lp:
            schema = lp.pack.schema
            recipes = []
            for change in changes:
                cond, cond_b = list(recipe.cond), list(recipe.cond_b) if recipe.cond_b is not None else None
                for name, value in change.items():
                    i = schema.names.index(schema[name].name)
                    cond[i] = schema[name].index(value)
                    if cond_b is not None:
                        cond_b[i] = cond[i]
                recipes.append(self._recipe(lp, recipe.model, recipe.latent, cond,
                                            tuple(cond_b) if cond_b else None, recipe.mix))
            z = await materialize(recipe.latent, lp.pack.z_dim, self.latent_store.get)
            return await self._draw(lp, recipes, np.repeat(z[None], len(recipes), axis=0))

    async def blend(self, a: Recipe, b: Recipe, t: float = 0.5) -> Result:
        """Slerp of the two latents and a (1-t, t) mix of their condition embeddings."""
        if a.pack_id != b.pack_id or a.pack_hash != b.pack_hash:
            raise EngineError("both avatars must come from the same pack and version to blend them")
        if a.model != b.model:
            raise EngineError("both avatars must come from the same model (gan or vae) to blend them")
        if a.is_blend or b.is_blend:
            raise EngineError("a blend cannot be blended again; edit or vary it first, or blend the originals")
        with self._lease(recipe=a) as lp:
            return (await self._draw(lp, [self._recipe(lp, a.model, Slerp(a.latent, b.latent, t), a.cond,
                                                        b.cond, t)]))[0]

    async def encode(self, pack: str | None, image, conditions: Mapping[str, str | None] | None = None,
                     seed: int | None = None) -> Result:
        """A member's picture -> VAE latent (encoder mu), kept in the latent store under a
        short content id, drawn back by the decoder with `conditions` (the encoder is
        unconditional: unset attributes are drawn from `seed`, by default from the picture)."""
        with self._lease(pack) as lp:
            p = lp.pack
            if not p.has_vae:
                raise EngineError(f"pack {p.name!r} has no VAE, so it cannot read pictures")
            arr = await asyncio.to_thread(to_rgb_array, image, p.resolution)
            mu, _logvar = await lp.batchers["encoder"].submit({"image": arr[None]})
            digest = hashlib.sha256(p.content_hash.encode() + arr.tobytes()).hexdigest()
            upload = digest[:12]
            z = np.ascontiguousarray(mu[0], dtype=np.float32)
            await self.latent_store.put(upload, z)
            seed = int(digest[12:20], 16) if seed is None else _check_seed(seed)
            _, draws = seed_draws(seed, p.z_dim, len(p.schema))
            recipe = self._recipe(lp, "vae", Upload(upload), p.schema.complete(conditions, draws))
            return (await self._draw(lp, [recipe], z[None]))[0]

    async def best_of(self, pack: str | None = None, conditions: Mapping[str, str | None] | None = None,
                      seed: int | None = None, k: int = 8, model: str | None = None) -> Result:
        """k candidates (seeds seed..seed+k-1) drawn in one batch and ranked by the
        discriminator (rejection sampling, Azadi et al. 2019); the best one's recipe
        records its own seed (and model: None is the pack's default), so it redraws without ranking again."""
        seed, k = _check_seed(seed), _check_n(k)
        with self._lease(pack) as lp:
            if not lp.pack.has_discriminator:
                raise EngineError(f"pack {lp.pack.name!r} has no discriminator to rank candidates with")
            results = await self._generate(lp, conditions, seed, k, model)
            images = np.stack([r.drawn for r in results])  # the discriminator sees the pack resolution
            cond = np.array([r.recipe.cond for r in results], dtype=np.int64)
            (scores,) = await lp.batchers["discriminator"].submit({"image": images, "cond": cond})
            best = int(np.argmax(scores))
            return Result(results[best].image, results[best].recipe, float(scores[best]), results[best].small)

    # -- output and status ------------------------------------------------------------------
    async def render_png(self, result: Result, size: int = 256, transparent: bool = False,
                         smooth: bool = True) -> bytes:
        """PNG bytes at 128/256/512 px, encoded in a worker thread; `transparent` cuts out
        the flat background (packs whose manifest says background "flat"); `smooth=False`
        upscales by nearest neighbour (pixel-art look) instead of clamped Lanczos."""
        if transparent:
            try:
                background = self.pack_of(result.recipe).background
            except UnknownPack:
                background = None
            if background != "flat":
                raise EngineError("this pack has no flat background, so it cannot make transparent pictures")
        return await asyncio.to_thread(png_bytes, result.image, size, transparent, smooth, result.small)

    def recipe(self, code: str) -> Recipe:
        """Decode a recipe code and check it against the installed packs (name filled in)."""
        r = Recipe.from_code(code)
        with self._lease(recipe=r) as lp:
            return r.with_(pack=lp.pack.name)

    def metrics(self) -> dict:
        reg = self._registry
        return {"uptime_s": round(time.monotonic() - self._started, 1), "providers": self.providers,
                "packs": reg.metrics(), "batchers": reg.supervision(), "reloads": reg.reloads,
                "refused": dict(reg.refused),
                "latent_store": type(self.latent_store).__name__}
