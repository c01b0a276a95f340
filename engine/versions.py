"""Pack versions: their order, and the released versions the engine knows by content hash.

Several versions of one pack name are installed side by side (one folder each); a recipe
is drawn only by the version whose content hash it records. New avatars use the newest
version of a name: semantic-version order (`version_key`), the content hash breaking ties.
"""

from __future__ import annotations

import re

__all__ = ["version_key", "newest_key", "pack_order", "RELEASED", "REEXPORTS"]

_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?")

# Released versions by (name, 8-hex content hash), so a recipe whose version is no longer
# installed is named in the message even when no installed manifest remembers it.
RELEASED = {
    ("moe-default", "d35e1823"): "1.0.0",
    ("moe-default", "ad6a670e"): "1.1.0",
    ("moe-default", "c36edb05"): "2.0.0",
    ("moe-default", "ac0a3592"): "2.1.0",
}

# Re-exports of the same trained weights (same pictures within one level): a recipe of the
# first version draws with the second. moe-default 1.1.0 is 1.0.0's weights in the fused graph.
REEXPORTS = {
    ("moe-default", "d35e1823"): "ad6a670e",
}


def version_key(version: object) -> tuple:
    """Sort key of a manifest version: semantic versions in their order (a pre-release
    before its release), anything else below every semantic version."""
    m = _SEMVER.fullmatch(version) if isinstance(version, str) else None
    if m is None:
        return (0, (), ())
    pre = m.group(4)
    parts = () if pre is None else tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (1, tuple(int(g) for g in m.group(1, 2, 3)), (pre is None, parts))


def newest_key(version: object, content_hash: str) -> tuple:
    """Order of versions for the default: the higher version, then the higher content hash."""
    return (version_key(version), content_hash)


def pack_order(pack) -> tuple:
    """`newest_key` of an `engine.pack.Pack`: sort packs of one name by it, newest last."""
    return newest_key(pack.manifest.get("version"), pack.content_hash)
