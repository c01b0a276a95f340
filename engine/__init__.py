"""engine: model packs -> avatars, over onnxruntime, without torch.

    from engine import Engine
    async with Engine(packs_dirs=[...]) as eng:
        [res] = await eng.generate("moe-default", {"style": "cat"}, seed=7)
"""

from engine.core import Engine, LatentStore, MemoryLatentStore, Result
from engine.errors import Busy, EngineError, InvalidRecipe, PackError, RequestTimeout, UnknownPack
from engine.pack import Pack, load_pack
from engine.recipe import Recipe
from engine.schema import Schema, SchemaError

__all__ = [
    "Engine", "Result", "Recipe", "Pack", "load_pack", "LatentStore", "MemoryLatentStore",
    "EngineError", "Busy", "RequestTimeout", "InvalidRecipe", "PackError", "UnknownPack",
    "Schema", "SchemaError",
]
