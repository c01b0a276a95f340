"""Seeded latents: the documented Philox stream, independent of call order and batch."""

from __future__ import annotations

import numpy as np

from engine.latents import seed_draws, seed_latent, slerp, vary_latent


def test_seed_latent_is_numpy_philox_keyed_by_the_seed():
    for seed in (0, 7, 2**32 - 1):
        ref = np.random.Generator(np.random.Philox(key=seed)).standard_normal(64, dtype=np.float32)
        np.testing.assert_array_equal(seed_latent(seed, 64), ref)
        z, draws = seed_draws(seed, 64, 5)
        np.testing.assert_array_equal(z, ref)
        assert len(draws) == 5 and draws == seed_draws(seed, 64, 5)[1]


def test_draws_do_not_depend_on_what_ran_before():
    a = seed_latent(5, 32)
    for s in range(100):
        vary_latent(seed_latent(s, 32), s, 0.5)
    np.testing.assert_array_equal(seed_latent(5, 32), a)


def test_vary_keeps_the_norm_and_grows_with_strength():
    z = seed_latent(1, 128)
    near, far = vary_latent(z, 9, 0.1), vary_latent(z, 9, 1.0)
    assert np.isclose(np.linalg.norm(near), np.linalg.norm(z), rtol=1e-5)
    assert np.linalg.norm(near - z) < np.linalg.norm(far - z)
    assert not np.array_equal(vary_latent(z, 9, 0.3), vary_latent(z, 10, 0.3))


def test_slerp_endpoints_and_norm():
    a, b = seed_latent(1, 128), seed_latent(2, 128)
    np.testing.assert_allclose(slerp(a, b, 0.0), a, atol=1e-6)
    np.testing.assert_allclose(slerp(a, b, 1.0), b, atol=1e-6)
    mid = slerp(a, b, 0.5)
    assert abs(np.linalg.norm(mid) - (np.linalg.norm(a) + np.linalg.norm(b)) / 2) < 1.0  # no lerp shrinkage
    np.testing.assert_allclose(slerp(a, a, 0.3), a, atol=1e-6)
