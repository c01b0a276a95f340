"""Deterministic latents from seeds: a counter-based generator (numpy Philox keyed by the seed).

Every draw depends only on (domain, seed), never on batch position or on other requests,
so the same recipe gives the same z anywhere. Domains keep the streams apart (base latent
vs variation noise); a seed's stream gives z first, then one integer per attribute for
the choice of unset attributes (one generator per request: this is the hot path).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable

import numpy as np

from engine.errors import EngineError
from engine.recipe import Latent, Seed, Slerp, Upload, Vary

__all__ = ["seed_latent", "seed_draws", "vary_latent", "slerp", "materialize"]

_BASE, _VARY = 0, 1


_local = threading.local()
_EMPTY = np.zeros(4, np.uint64)


def _rng(domain: int, seed: int) -> np.random.Generator:
    """The same stream as `Generator(Philox(key=(domain << 32) | seed))`, made by resetting a
    per-thread Philox: constructing one reads os.urandom first and is several times slower
    (see docs/reports/engine-notes.md)."""
    gen = getattr(_local, "gen", None)
    if gen is None:
        gen = _local.gen = np.random.Generator(np.random.Philox(key=0))
    gen.bit_generator.state = {
        "bit_generator": "Philox",
        "state": {"counter": _EMPTY.copy(), "key": np.array([(domain << 32) | seed, 0], np.uint64)},
        "buffer": _EMPTY.copy(), "buffer_pos": 4, "has_uint32": 0, "uinteger": 0,
    }
    return gen


def seed_latent(seed: int, z_dim: int) -> np.ndarray:
    """z ~ N(0, I), float32 (z_dim,), a pure function of the seed."""
    return _rng(_BASE, seed).standard_normal(z_dim, dtype=np.float32)


def vary_latent(z: np.ndarray, seed: int, strength: float) -> np.ndarray:
    """normalize(z + strength * eps): a nearby latent with the same norm as z."""
    eps = _rng(_VARY, seed).standard_normal(z.shape[-1], dtype=np.float32)
    v = z + np.float32(strength) * eps
    norm = np.linalg.norm(v)
    return (v * (np.linalg.norm(z) / norm)).astype(np.float32) if norm > 0 else v


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation (Shoemake 1985; White 2016 for GAN latents); lerp when nearly parallel."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
    if na == 0 or nb == 0:
        return ((1 - t) * a64 + t * b64).astype(np.float32)
    cos = float(np.clip(np.dot(a64 / na, b64 / nb), -1.0, 1.0))
    omega = np.arccos(cos)
    if np.sin(omega) < 1e-6:
        return ((1 - t) * a64 + t * b64).astype(np.float32)
    s = np.sin(omega)
    return (np.sin((1 - t) * omega) / s * a64 + np.sin(t * omega) / s * b64).astype(np.float32)


def seed_draws(seed: int, z_dim: int, n_attributes: int) -> tuple[np.ndarray, list[int]]:
    """(z, one random integer per attribute in schema order): z equals seed_latent(seed);
    the integers fill unset attributes, so setting one attribute never changes the random
    choice of another."""
    rng = _rng(_BASE, seed)
    z = rng.standard_normal(z_dim, dtype=np.float32)
    return z, rng.bit_generator.random_raw(n_attributes).tolist()


async def materialize(
    node: Latent, z_dim: int, fetch_upload: Callable[[str], Awaitable[np.ndarray | None]]
) -> np.ndarray:
    """Evaluate a latent expression tree to a float32 (z_dim,) vector."""
    if isinstance(node, Seed):
        return seed_latent(node.seed, z_dim)
    if isinstance(node, Vary):
        return vary_latent(await materialize(node.base, z_dim, fetch_upload), node.seed, node.strength)
    if isinstance(node, Slerp):
        a = await materialize(node.a, z_dim, fetch_upload)
        b = await materialize(node.b, z_dim, fetch_upload)
        return slerp(a, b, node.t)
    if isinstance(node, Upload):
        z = await fetch_upload(node.id)
        if z is None:
            raise EngineError("the picture behind this avatar is no longer stored; upload it again",
                              reason="upload_gone")
        z = np.asarray(z, dtype=np.float32).reshape(-1)
        if z.shape != (z_dim,):
            raise EngineError(f"the stored latent for upload {node.id} has size {z.size}, expected {z_dim}")
        return z
    raise TypeError(f"not a latent: {node!r}")
