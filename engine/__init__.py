"""engine: model packs -> avatars, over onnxruntime, without torch.

    from engine import Engine
    async with Engine(packs_dirs=[...]) as eng:
        [res] = await eng.generate("moe-default", {"style": "cat"}, seed=7)

The names below load on first use (PEP 562), so `import engine.schema` or
`import engine.recipe` loads neither numpy nor onnxruntime. Modules inside
this package import each other by module (`from engine.errors import Busy`), never
through this file.
"""

from __future__ import annotations

import importlib

__all__ = [
    "Engine", "Result", "Recipe", "Pack", "load_pack", "LatentStore", "MemoryLatentStore",
    "EngineError", "Busy", "RequestTimeout", "InvalidRecipe", "PackError", "UnknownPack",
    "Schema", "SchemaError",
]

_LAZY = {
    "Engine": "engine.core", "Result": "engine.core", "LatentStore": "engine.core", "MemoryLatentStore": "engine.core",
    "EngineError": "engine.errors", "Busy": "engine.errors", "RequestTimeout": "engine.errors",
    "InvalidRecipe": "engine.errors", "PackError": "engine.errors", "UnknownPack": "engine.errors",
    "Pack": "engine.pack", "load_pack": "engine.pack", "Recipe": "engine.recipe",
    "Schema": "engine.schema", "SchemaError": "engine.schema",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
