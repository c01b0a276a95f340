"""Make onnxruntime fail on demand in a bot process (tests only).

With `MOE_FAULT_ORT_FLAG=/path/flag` set, every `InferenceSession.run` first looks at that
file: absent, the run goes on; holding a number N, this run raises and the number drops by
one (the file goes at 0); holding "always", every run raises while the file exists. The
test creates the file once the bot is ready (pack loading and batch tuning run sessions
too), so it decides which batch fails. Without the variable this file does nothing.

Loaded as `sitecustomize` from PYTHONPATH after the fake Discord's shim, which runs the
next `sitecustomize` on the path; this one does the same for any further one.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import threading

_FLAG = os.environ.get("MOE_FAULT_ORT_FLAG")


class InjectedFault(RuntimeError):
    """What the patched session run raises (onnxruntime raises its own RuntimeError kinds)."""


def _patch_onnxruntime() -> None:
    import onnxruntime

    run = onnxruntime.InferenceSession.run
    lock = threading.Lock()

    def run_or_fail(self, *args, **kwargs):
        with lock:
            try:
                with open(_FLAG) as f:
                    left = f.read().strip()
            except FileNotFoundError:
                left = None
            if left is not None and left != "always":
                n = int(left or 1) - 1
                if n > 0:
                    with open(_FLAG, "w") as f:
                        f.write(str(n))
                else:
                    os.unlink(_FLAG)
        if left is not None:
            raise InjectedFault(f"injected onnxruntime failure ({_FLAG})")
        return run(self, *args, **kwargs)

    onnxruntime.InferenceSession.run = run_or_fail


def _run_shadowed_sitecustomize() -> None:
    """Only the path entries after this folder: the fake Discord's shim, before it, runs us."""
    here = os.path.dirname(os.path.abspath(__file__))
    paths = [os.path.abspath(p or os.curdir) for p in sys.path]
    rest = sys.path[paths.index(here) + 1:] if here in paths else []
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


if _FLAG:
    _patch_onnxruntime()
_run_shadowed_sitecustomize()
