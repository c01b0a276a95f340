"""Recipe codes: round trips over many random recipes; garbled and forged codes are refused."""

from __future__ import annotations

import base64
import random

import pytest

from engine.errors import InvalidRecipe
from engine.recipe import MAX_SEED, Recipe, Seed, Slerp, Upload, Vary, pack_id_of


def random_latent(rng: random.Random, depth: int = 0, upload_ok: bool = True):
    kind = rng.choice(["seed", "seed", "upload", "vary", "slerp"] if depth < 2 else ["seed"])
    if kind == "upload" and upload_ok:
        return Upload("".join(rng.choice("0123456789abcdef") for _ in range(12)))
    if kind == "vary":
        return Vary(random_latent(rng, depth + 1, upload_ok), rng.randint(0, MAX_SEED), rng.randint(1, 200) / 100)
    if kind == "slerp":
        return Slerp(random_latent(rng, depth + 1, upload_ok), random_latent(rng, depth + 1, upload_ok), rng.random())
    return Seed(rng.randint(0, MAX_SEED))


def random_recipe(rng: random.Random) -> Recipe:
    a = rng.randint(1, 12)
    model = rng.choice(["gan", "vae"])
    latent = random_latent(rng, upload_ok=model == "vae")
    blend = rng.random() < 0.3
    return Recipe(
        pack_id=rng.randrange(2**16), pack_hash=f"{rng.getrandbits(32):08x}", model=model, latent=latent,
        cond=tuple(rng.randrange(256) for _ in range(a)),
        cond_b=tuple(rng.randrange(256) for _ in range(a)) if blend else None,
        mix=rng.random() if blend else 0.0,
    )


def test_round_trip_many_random_recipes():
    rng = random.Random(1234)
    for _ in range(2000):
        r = random_recipe(rng)
        code = r.to_code()
        assert Recipe.from_code(code) == r, code
        assert len(code) <= 160


def test_quantised_values_are_what_the_code_keeps():
    r = Recipe(1, "0011aabb", "gan", Vary(Seed(5), 9, 0.333), (1, 2))
    assert r.latent.strength == 0.33
    b = Recipe(1, "0011aabb", "gan", Slerp(Seed(1), Seed(2), 0.5), (1, 2), (3, 4), 1 / 7)
    again = Recipe.from_code(b.to_code())
    assert again.latent.t == b.latent.t == round(0.5 * 255) / 255
    assert again.mix == b.mix


def test_codes_are_short_enough_for_discord_custom_ids():
    pid, h = pack_id_of("moe-default"), "deadbeef"
    plain = Recipe(pid, h, "gan", Seed(MAX_SEED), (7, 5, 3, 4, 5, 6))
    assert len(plain.to_code()) <= 60
    va = Vary(Seed(123456789), MAX_SEED, 0.3)
    vb = Vary(Seed(42), 7, 1.5)
    blend = Recipe(pid, h, "gan", Slerp(va, vb, 0.25), (7, 5, 3, 4, 5, 6), (1, 2, 3, 0, 1, 2), 0.25)
    assert len("moe:blend:" + blend.to_code()) <= 100


def test_every_single_byte_corruption_is_refused_or_different():
    rng = random.Random(7)
    r = random_recipe(rng)
    raw = bytearray(base64.urlsafe_b64decode(r.to_code() + "=="))
    accepted = 0
    for i in range(len(raw)):
        for bit in range(8):
            forged = bytearray(raw)
            forged[i] ^= 1 << bit
            code = base64.urlsafe_b64encode(bytes(forged)).rstrip(b"=").decode()
            try:
                Recipe.from_code(code)
            except InvalidRecipe:
                continue
            accepted += 1
    # a one-byte checksum lets about 1/256 through; then range checks catch most of those
    assert accepted <= len(raw) * 8 // 64


@pytest.mark.parametrize("code", [
    "", "a", "x" * 161, "AYlQ40mcDwAFAAUAAQMAAAAAB_4!", "AYlQ40mc DwAFAAUAAQMAAAAAB_4", "AYlQ40mcDwAFAAUAAQMAAAAAB_4==",
    "AYlQ40mcDwAFAAUAAQMAAAAAB_5",  # non-canonical trailing bits / bad checksum
    "AYlQ40mcDwAFAAUAAQMAAAAAB", "🐱" * 30, "moe:reroll:AYlQ40mcDwAFAAUAAQMAAAAAB_4",
])
def test_garbled_codes_are_invalid_recipe(code):
    with pytest.raises(InvalidRecipe):
        Recipe.from_code(code)


def test_non_string_code_is_invalid_recipe():
    with pytest.raises(InvalidRecipe):
        Recipe.from_code(None)  # type: ignore[arg-type]


def forge(body: bytes) -> str:
    """A code with a *valid* checksum around an arbitrary body: what a forger can make."""
    import hashlib

    return base64.urlsafe_b64encode(body + hashlib.sha256(body).digest()[:1]).rstrip(b"=").decode()


@pytest.mark.parametrize("body", [
    bytes([2, 0, 1, 0, 0, 0, 0, 0, 2, 1, 1, 0, 0, 0, 0, 1]),  # version 2
    bytes([1, 0, 1, 0, 0, 0, 0, 4, 2, 1, 1, 0, 0, 0, 0, 1]),  # unknown flag bit
    bytes([1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]),  # zero attributes
    bytes([1, 0, 1, 0, 0, 0, 0, 0, 2, 1, 1, 9, 0, 0, 0, 1]),  # unknown latent tag
    bytes([1, 0, 1, 0, 0, 0, 0, 0, 2, 1, 1, 2, 0, 0, 0, 1, 0]),  # vary strength 0, cut off
    bytes([1, 0, 1, 0, 0, 0, 0, 0, 2, 1, 1, 2, 0, 0, 0, 1, 201, 0, 0, 0, 0, 1]),  # strength 2.01
    bytes([1, 0, 1, 0, 0, 0, 0, 0, 2, 1, 1, 0, 0, 0, 0, 1, 0]),  # trailing byte
    bytes([1, 0, 1, 0, 0, 0, 0, 0, 2, 1, 1, 1, 1, 2, 3, 4, 5, 6]),  # upload with gan model
    bytes([1, 0, 1, 0, 0, 0, 0, 0, 2, 1, 1]) + bytes([3, 0]) * 10 + bytes([0, 0, 0, 0, 1]) * 11,  # too many steps
])
def test_forged_codes_with_valid_checksum_are_refused(body):
    with pytest.raises(InvalidRecipe):
        Recipe.from_code(forge(body))


def test_forged_valid_body_is_accepted():  # the helper itself builds good codes
    body = bytes([1, 0, 1, 0xDE, 0xAD, 0xBE, 0xEF, 0, 2, 1, 1, 0, 0, 0, 0, 7])
    r = Recipe.from_code(forge(body))
    assert r == Recipe(1, "deadbeef", "gan", Seed(7), (1, 1))


@pytest.mark.parametrize("make", [
    lambda: dict(latent=Seed(-1)), lambda: dict(latent=Seed(MAX_SEED + 1)), lambda: dict(model="diffusion"),
    lambda: dict(cond=(256,)), lambda: dict(cond=()), lambda: dict(pack_hash="XYZ"),
    lambda: dict(latent=Upload("abc")), lambda: dict(mix=0.5), lambda: dict(cond_b=(1, 2, 3)),
    lambda: dict(latent=Upload("0123456789ab")),  # uploads are vae-only
    lambda: dict(latent=Vary(Seed(1), 2, 0.0)), lambda: dict(latent=Slerp(Seed(1), Seed(2), 1.5)),
])
def test_constructor_validates(make):
    base = dict(pack_id=1, pack_hash="00000000", model="gan", latent=Seed(1), cond=(1, 2))
    with pytest.raises(InvalidRecipe):
        Recipe(**{**base, **make()})
