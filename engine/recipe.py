"""Recipes: everything needed to redraw an avatar, as a short URL-safe code.

A recipe names a pack (2-byte id from its name + 8-hex content-hash prefix), the model
("gan" or "vae"), the condition indices in schema order (plus a second condition and a
mix weight for blends), and a small latent expression tree:

    Seed(seed)                      z = N(0, I) drawn from a counter-based generator keyed by seed
    Upload(id)                      z = the encoder's mu of an uploaded picture (kept in a latent store)
    Vary(base, seed, strength)      z = normalize(z_base + strength * eps(seed))
    Slerp(a, b, t)                  spherical interpolation of two latents

The code is binary (struct) + base64url without padding:

    u8 version | u16 pack_id | 4B pack hash | u8 flags (bit0 vae, bit1 blend) | u8 A
    | A x u8 cond | [A x u8 cond_b | u8 mix*255] | latent tree (prefix order) | u8 checksum

    tree: 0 Seed u32 | 1 Upload 6B | 2 Vary u32 seed, u8 strength*100, base | 3 Slerp u8 t*255, a, b

An ordinary recipe with 6 attributes is 21 bytes (28 characters); a blend of two varied
recipes is 48 bytes (64 characters), so `moe:<verb>:<code>` fits a Discord custom_id.
Decoding validates everything (charset, canonical form, checksum, version, ranges, tree
size, trailing bytes) and raises `InvalidRecipe` with a plain message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass, field, replace

from engine.errors import InvalidRecipe

__all__ = ["Recipe", "Seed", "Upload", "Vary", "Slerp", "Latent", "pack_id_of", "upload_ids", "MAX_SEED"]

VERSION = 1
MAX_SEED = 2**32 - 1
MAX_NODES = 9  # e.g. a blend of two recipes each varied three times
MAX_CODE_CHARS = 160
_CODE_RE = re.compile(r"[A-Za-z0-9_-]+")
_HEAD = struct.Struct(">BH4sBB")  # version, pack_id, hash, flags, A
_SEED, _UPLOAD, _VARY, _SLERP = range(4)
MODELS = ("gan", "vae")


def pack_id_of(name: str) -> int:
    """The 2-byte id a code uses for a pack name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:2], "big")


def _check_seed(seed: int, what: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InvalidRecipe(f"{what} must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return seed


@dataclass(frozen=True)
class Seed:
    seed: int

    def __post_init__(self) -> None:
        _check_seed(self.seed)


@dataclass(frozen=True)
class Upload:
    id: str  # 12 hex characters

    def __post_init__(self) -> None:
        if not (isinstance(self.id, str) and len(self.id) == 12 and re.fullmatch(r"[0-9a-f]{12}", self.id)):
            raise InvalidRecipe(f"upload id must be 12 lowercase hex characters, got {self.id!r}")


@dataclass(frozen=True)
class Vary:
    base: Latent
    seed: int
    strength: float  # quantised to 0.01, in [0.01, 2.0]

    def __post_init__(self) -> None:
        _check_seed(self.seed, "variation seed")
        q = round(float(self.strength) * 100)
        if not 1 <= q <= 200:
            raise InvalidRecipe(f"variation strength must be between 0.01 and 2, got {self.strength!r}")
        object.__setattr__(self, "strength", q / 100)


@dataclass(frozen=True)
class Slerp:
    a: Latent
    b: Latent
    t: float  # quantised to 1/255, in [0, 1]

    def __post_init__(self) -> None:
        object.__setattr__(self, "t", _quantise_t(self.t, "blend position"))


Latent = Seed | Upload | Vary | Slerp


def _quantise_t(t: float, what: str) -> float:
    t = float(t)
    if not 0.0 <= t <= 1.0:
        raise InvalidRecipe(f"{what} must be between 0 and 1, got {t!r}")
    return round(t * 255) / 255


def _nodes(node: Latent) -> int:
    if isinstance(node, Vary):
        return 1 + _nodes(node.base)
    if isinstance(node, Slerp):
        return 1 + _nodes(node.a) + _nodes(node.b)
    return 1


def upload_ids(node: Latent) -> set[str]:
    """The upload ids (latents of uploaded pictures) a latent tree refers to."""
    if isinstance(node, Upload):
        return {node.id}
    if isinstance(node, Vary):
        return upload_ids(node.base)
    if isinstance(node, Slerp):
        return upload_ids(node.a) | upload_ids(node.b)
    return set()


@dataclass(frozen=True)
class Recipe:
    pack_id: int
    pack_hash: str  # 8 hex: prefix of the pack's content hash
    model: str  # "gan" | "vae"
    latent: Latent
    cond: tuple[int, ...]
    cond_b: tuple[int, ...] | None = None  # blends: the second condition
    mix: float = 0.0  # weight of cond_b's embedding (quantised to 1/255)
    pack: str = field(default="", compare=False)  # pack name; filled in by the engine, not in the code

    def __post_init__(self) -> None:
        if not (isinstance(self.pack_id, int) and 0 <= self.pack_id < 2**16):
            raise InvalidRecipe(f"pack id must fit in 16 bits, got {self.pack_id!r}")
        if not (isinstance(self.pack_hash, str) and re.fullmatch(r"[0-9a-f]{8}", self.pack_hash)):
            raise InvalidRecipe(f"pack hash must be 8 lowercase hex characters, got {self.pack_hash!r}")
        if self.model not in MODELS:
            raise InvalidRecipe(f"model must be gan or vae, got {self.model!r}")
        if not isinstance(self.latent, Seed | Upload | Vary | Slerp):
            raise InvalidRecipe(f"not a latent: {self.latent!r}")
        if _nodes(self.latent) > MAX_NODES:
            raise InvalidRecipe(f"this avatar has too many steps (more than {MAX_NODES}); start from a fresh one",
                                reason="too_many_steps")
        if upload_ids(self.latent) and self.model != "vae":
            raise InvalidRecipe("an uploaded picture can only be drawn by the vae model")
        object.__setattr__(self, "cond", _check_cond(self.cond))
        if self.cond_b is None:
            if self.mix:
                raise InvalidRecipe("a mix weight needs a second condition")
        else:
            object.__setattr__(self, "cond_b", _check_cond(self.cond_b))
            if len(self.cond_b) != len(self.cond):
                raise InvalidRecipe("the two conditions of a blend differ in length")
            object.__setattr__(self, "mix", _quantise_t(self.mix, "condition mix"))

    # -- convenience ------------------------------------------------------------------
    @property
    def seed(self) -> int | None:
        """The seed when the latent is a plain seed, else None."""
        return self.latent.seed if isinstance(self.latent, Seed) else None

    @property
    def is_blend(self) -> bool:
        return self.cond_b is not None

    def with_(self, **changes) -> Recipe:
        return replace(self, **changes)

    # -- code -------------------------------------------------------------------------
    def to_code(self) -> str:
        flags = (self.model == "vae") | (self.is_blend << 1)
        out = bytearray(_HEAD.pack(VERSION, self.pack_id, bytes.fromhex(self.pack_hash), flags, len(self.cond)))
        out += bytes(self.cond)
        if self.cond_b is not None:
            out += bytes(self.cond_b)
            out.append(round(self.mix * 255))
        _write(self.latent, out)
        out.append(_checksum(out))
        return base64.urlsafe_b64encode(bytes(out)).rstrip(b"=").decode("ascii")

    @classmethod
    def from_code(cls, code: str) -> Recipe:
        """Parse and validate a code; anything garbled or forged raises InvalidRecipe."""
        bad = InvalidRecipe("that recipe code is not valid (it may be cut off or mistyped)")
        if not isinstance(code, str) or not 20 <= len(code) <= MAX_CODE_CHARS or not _CODE_RE.fullmatch(code):
            raise bad
        try:
            raw = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
        except (binascii.Error, ValueError):
            raise bad from None
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != code or len(raw) < _HEAD.size + 7:
            raise bad
        body, check = raw[:-1], raw[-1]
        if _checksum(body) != check:
            raise bad
        version, pack_id, phash, flags, n_attr = _HEAD.unpack_from(body)
        if version != VERSION:
            raise InvalidRecipe(f"recipe code version {version} is not supported by this engine", reason="version")
        if flags & ~0b11 or not 1 <= n_attr <= 64:
            raise bad
        pos = _HEAD.size
        cond = tuple(body[pos : pos + n_attr])
        pos += n_attr
        cond_b, mix = None, 0.0
        if flags & 0b10:
            cond_b = tuple(body[pos : pos + n_attr])
            if pos + n_attr + 1 > len(body):
                raise bad
            mix = body[pos + n_attr] / 255
            pos += n_attr + 1
        reader = _Reader(body, pos)
        latent = reader.node(depth=0)
        if reader.pos != len(body) or len(cond) != n_attr:
            raise bad
        return cls(pack_id, phash.hex(), MODELS[flags & 1], latent, cond, cond_b, mix)


def _check_cond(cond) -> tuple[int, ...]:
    try:
        out = tuple(int(i) for i in cond)
    except (TypeError, ValueError):
        raise InvalidRecipe(f"condition must be a sequence of indices, got {cond!r}") from None
    if not 1 <= len(out) <= 64 or any(not 0 <= i <= 255 for i in out):
        raise InvalidRecipe(f"condition indices must be 1 to 64 values in 0..255, got {out!r}")
    return out


def _checksum(data: bytes | bytearray) -> int:
    return hashlib.sha256(data).digest()[0]


def _write(node: Latent, out: bytearray) -> None:
    if isinstance(node, Seed):
        out += struct.pack(">BI", _SEED, node.seed)
    elif isinstance(node, Upload):
        out.append(_UPLOAD)
        out += bytes.fromhex(node.id)
    elif isinstance(node, Vary):
        out += struct.pack(">BIB", _VARY, node.seed, round(node.strength * 100))
        _write(node.base, out)
    else:
        out += struct.pack(">BB", _SLERP, round(node.t * 255))
        _write(node.a, out)
        _write(node.b, out)


class _Reader:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos, self.count = data, pos, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise InvalidRecipe("that recipe code is not valid (it is cut off)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def node(self, depth: int) -> Latent:
        self.count += 1
        if self.count > MAX_NODES or depth > MAX_NODES:
            raise InvalidRecipe("that recipe code is not valid (too many steps)")
        tag = self.take(1)[0]
        if tag == _SEED:
            return Seed(struct.unpack(">I", self.take(4))[0])
        if tag == _UPLOAD:
            return Upload(self.take(6).hex())
        if tag == _VARY:
            seed, q = struct.unpack(">IB", self.take(5))
            return Vary(self.node(depth + 1), seed, q / 100)
        if tag == _SLERP:
            t = self.take(1)[0] / 255
            a = self.node(depth + 1)
            return Slerp(a, self.node(depth + 1), t)
        raise InvalidRecipe("that recipe code is not valid (unknown step)")
