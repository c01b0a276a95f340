"""The engine runs where torch cannot be imported (serving installs have no torch)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys
    sys.modules["torch"] = None  # any `import torch` now raises ImportError
    import asyncio, io
    import numpy as np
    from PIL import Image
    import engine
    from engine import Engine, Recipe

    async def main(packs):
        async with Engine([packs], watch_s=None) as eng:
            [a] = await eng.generate("tiny", {"style": "cat"}, seed=1)
            [b] = await eng.generate("tiny", {"style": "dog"}, seed=2)
            [v] = await eng.vary(a.recipe, 0.3, n=1, seed=3)
            e = await eng.edit(v.recipe, eyes="big")
            m = await eng.blend(a.recipe, e.recipe, 0.5)
            best = await eng.best_of("tiny", {}, seed=4, k=4)
            png = await eng.render_png(m, 256, transparent=True)
            up = await eng.encode("tiny", png)
            r = await eng.redraw(Recipe.from_code(up.code))
            assert np.array_equal(r.image, up.image)
            assert Image.open(io.BytesIO(png)).size == (256, 256)
            print("ok", len(png), best.score is not None)

    asyncio.run(main(sys.argv[1]))
    assert sys.modules["torch"] is None
""")


def test_engine_runs_every_operation_without_torch(tiny_pack_src):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_pack_src.parent)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok ")


def test_import_engine_does_not_import_torch():
    code = "import sys, engine, engine.cli; assert 'torch' not in sys.modules, 'torch imported'; print('clean')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"
