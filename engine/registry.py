"""Installed packs with their sessions and batchers; hot reload without dropping requests.

A `Loaded` pack is used under a small reference count (`acquire`/`release`). Reloading
loads and checks the new pack off the loop (hashes, schema, sessions, one warm-up run per
model), then swaps it in: new requests go to the new batchers, and the old ones drain the
requests already in flight before their threads stop. A pack that fails to load, for any
reason, is refused with a one-line message (logged once) and not tried again until its
files change; the other packs load, and whatever was serving keeps serving.

Several versions of one pack name are served side by side, one entry per (name, content
hash), each from its own folder (`packs/<name>@<version>/` by convention). `loaded` holds the
newest version of each name (the default for new avatars, `engine.versions.newest_key`);
`versions` holds them all, and a recipe is leased to the version whose content hash it
records. One (name, content hash) is served from one folder: a second folder holding the same
version is refused while the first still serves it, whatever the order the files were written
in; when the serving folder is removed (or changed to another pack or version), the refused
copy is tried again, in the same reload if the serving folder is gone, else at the next one.
"""

from __future__ import annotations

import asyncio
import logging
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.batcher import Batcher
from engine.errors import PackError, UnknownPack
from engine.metrics import ModelMetrics
from engine.pack import MODEL_IO, Pack, find_packs, load_pack, verify_files
from engine.recipe import pack_id_of
from engine.sessions import Runner, fixed_batch_inputs, make_session, tune_batch
from engine.versions import REEXPORTS, RELEASED, pack_order

__all__ = ["Loaded", "Registry"]

log = logging.getLogger(__name__)


@dataclass
class BatchOptions:
    max_batch: int = 64
    max_wait_s: float = 0.0
    queue_size: int = 1024
    timeout_s: float = 10.0
    tune_batch: bool = True
    precision: str = "fp32"  # fp32 | fp16 (the packs' *.fp16.onnx where present) | auto (fp16 on CUDA)


@dataclass(eq=False)
class Loaded:
    pack: Pack
    runners: dict[str, Runner]
    caps: dict[str, int] = field(default_factory=dict)  # run chunk per model (rows per session.run)
    batchers: dict[str, Batcher] = field(default_factory=dict)
    users: int = 0
    retired: bool = False
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.users -= 1
        if self.retired and self.users == 0:
            self.idle.set()


class _Duplicate(PackError):
    """A folder whose pack version (name and content hash) is already served from another folder."""

    def __init__(self, message: str, version: tuple[str, str], where: str) -> None:
        super().__init__(message)
        self.version, self.where = version, where


def _label(pack: Pack) -> str:
    return f"{pack.name} {pack.manifest.get('version', '?')}"


def _stamp(folder: Path) -> tuple:
    """What changes when any file of the pack is written, replaced or added: (relative
    name, size, mtime_ns, ctime_ns) of each file under the folder (ctime also catches a
    copy that keeps the old mtime)."""
    out = []
    for p in sorted(folder.rglob("*")):
        try:
            st = p.stat()
        except FileNotFoundError:  # removed while we looked
            continue
        if stat.S_ISREG(st.st_mode):
            out.append((p.relative_to(folder).as_posix(), st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


def _one_line(e: Exception, folder: Path) -> str:
    """A refusal's reason on one line; errors other than PackError (a bug, or a manifest
    shape the checks missed) are named with their class and the folder."""
    text = " ".join(str(e).split())
    return text if isinstance(e, PackError) else f"{folder}: cannot be loaded ({type(e).__name__}: {text})"


def _dummy_feeds(pack: Pack, key: str, n: int = 1) -> dict[str, np.ndarray]:
    a, z, r = len(pack.schema), pack.z_dim, pack.resolution
    cond = np.zeros((n, a), np.int64)
    if key in ("generator", "decoder"):
        zs = np.random.default_rng(0).standard_normal((n, z), dtype=np.float32)
        return {"z": zs, "cond": cond, "cond_b": cond, "mix": np.zeros((n, 1), np.float32)}
    image = np.zeros((n, r, r, 3), np.uint8)
    return {"image": image, "cond": cond} if key == "discriminator" else {"image": image}


def _expected_shapes(pack: Pack, key: str) -> list[tuple]:
    r, z, big = pack.resolution, pack.z_dim, pack.output_resolution
    return {"generator": [(1, r, r, 3)], "decoder": [(1, r, r, 3)], "discriminator": [(1,)],
            "encoder": [(1, z), (1, z)], "upscaler": [(1, big, big, 3)]}[key]


IMAGE_MODELS = ("generator", "decoder", "upscaler")  # models whose output is a picture (uint8), tuned at load


def chained(draw, upscale):
    """The generator's (or decoder's) batch, then the upscaler on its pictures, in one batch call:
    returns [upscaled, picture] (the picture at the pack resolution, for the discriminator and encoder)."""

    def run_chain(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        (image,) = draw(feeds)
        (upscaled,) = upscale({"image": image})
        return [upscaled, image]

    return run_chain


def chunked(run: Runner, chunk: int):
    """A batch from the batcher (sized to amortise the hand-offs between the loop and the
    worker) runs as session.run calls of `chunk` rows (the size the model computes fastest
    on this machine); rows do not depend on their neighbours, so pixels are unchanged."""

    def run_chunks(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        n = len(next(iter(feeds.values())))
        if n <= chunk:
            return run(feeds)
        parts = [run({k: v[i : i + chunk] for k, v in feeds.items()}) for i in range(0, n, chunk)]
        return [np.concatenate([p[j] for p in parts]) for j in range(len(parts[0]))]

    return run_chunks


def load_runners(path: Path, providers: list[str], threads: int | None, max_batch: int = 64,
                 tune: bool = True, fp16: bool = False) -> tuple[Pack, dict[str, Runner], dict[str, int]]:
    """Check a pack and open its models from the bytes whose hash was checked; each model
    must have the contract's inputs and outputs, a dynamic batch axis, and give the right
    shapes on a warm-up run. Returns the pack, its runners and
    the run chunk per model (`tune_batch` for the image models). Blocking: call it in a thread."""
    pack = load_pack(path, verify_hashes=False)  # verified below, reading the files sessions are made from
    used = {key: spec.fp16_file if fp16 and spec.fp16_file else spec.file for key, spec in pack.models.items()}
    files = verify_files(pack, read=frozenset(used.values()))  # the fp32 file when there is no fp16 variant

    def open_runner(key: str) -> Runner:
        file, data = files[used[key]]
        return Runner(make_session(data, providers, threads, where=file), file)  # the bytes that were hashed

    runners = {}
    for key in pack.models:
        runner = open_runner(key)
        file = runner.path
        want_in, want_out = MODEL_IO[key]
        if set(runner.input_names) != set(want_in) or runner.output_names != want_out:
            raise PackError(f"{file}: inputs {list(runner.input_names)} / outputs {list(runner.output_names)} "
                            f"do not match the contract {list(want_in)} / {list(want_out)}")
        if fixed := fixed_batch_inputs(runner.session):
            raise PackError(f"{file}: inputs {fixed} have a fixed batch size; the engine batches requests, "
                            "so export the model with a dynamic first axis")
        try:
            outs = runner(_dummy_feeds(pack, key))
        except Exception as e:  # onnxruntime's own error classes; the pack is refused with the reason
            raise PackError(f"{file}: a test run failed: {e}") from None
        shapes = [tuple(o.shape) for o in outs]
        if shapes != _expected_shapes(pack, key) or (key in IMAGE_MODELS and outs[0].dtype != np.uint8):
            raise PackError(f"{file}: a test run gave {shapes} {[str(o.dtype) for o in outs]}, "
                            f"expected {_expected_shapes(pack, key)} (image outputs uint8)")
        runners[key] = runner
    caps = {key: max_batch for key in runners}
    if tune:
        for key in IMAGE_MODELS:
            if key in runners:
                caps[key] = tune_batch(runners[key], lambda n, key=key: _dummy_feeds(pack, key, n), max_batch)
                # Tuning ran batches larger than the chunk it picks, and onnxruntime's CPU arena keeps
                # the memory of the largest run for good: serve from a fresh session of the same bytes.
                runners[key] = open_runner(key)
                runners[key](_dummy_feeds(pack, key))
    return pack, runners, caps


class Registry:
    def __init__(self, dirs: Iterable[Path | str], providers: list[str], threads: int | None,
                 options: BatchOptions) -> None:
        self.dirs = [Path(d) for d in dirs]
        self.providers, self.threads, self.options = providers, threads, options
        self.loaded: dict[str, Loaded] = {}  # name -> its newest version (the default for new avatars)
        self.versions: dict[str, dict[str, Loaded]] = {}  # name -> content hash -> every version served
        self.by_id: dict[int, str] = {}
        self.refused: dict[str, str] = {}  # folder -> message
        self.reloads = 0
        self._folders: dict[str, tuple[tuple[str, str], tuple]] = {}  # folder -> ((name, content hash), stamp)
        self._refused_stamps: dict[str, tuple] = {}
        self._duplicates: dict[str, tuple[tuple[str, str], str]] = {}  # refused folder -> (its version, serving folder)
        self._seen: dict[tuple[str, str], str] = {}  # (name, 8-hex hash) -> version, of every version loaded
        self._metrics: dict[tuple[str, str], ModelMetrics] = {}
        self._lock = asyncio.Lock()
        self._retiring: set[asyncio.Task] = set()

    def get(self, name: str) -> Loaded:
        try:
            return self.loaded[name]
        except KeyError:
            known = ", ".join(sorted(self.loaded)) or "none installed"
            raise UnknownPack(f"no pack named {name!r} (installed: {known})") from None

    def get_version(self, name: str, pack_hash: str) -> Loaded:
        """The version of `name` whose content hash starts with `pack_hash` (a recipe's 8 hex),
        or the one a known re-export of that version names; UnknownPack when it is not installed."""
        served = self.versions.get(name, {})
        for want in (pack_hash, REEXPORTS.get((name, pack_hash))):
            for h, lp in served.items():
                if want is not None and h.startswith(want):
                    return lp
        raise self.gone(name, pack_hash)

    def gone(self, name: str, pack_hash: str) -> UnknownPack:
        """The error for a recipe of `name` whose version (8-hex `pack_hash`) is not installed: reason
        "retired" naming the version when this process loaded it or it is a known release, and
        the versions of `name` that are installed, if any."""
        version = self._seen.get((name, pack_hash)) or RELEASED.get((name, pack_hash))
        what = f"{name} {version}" if version else f"{name} (content {pack_hash})"
        message = f"this avatar was drawn with {what}, which is no longer installed on this bot"
        if served := self.versions.get(name):
            installed = ", ".join(sorted(lp.pack.manifest.get("version", "?") for lp in served.values()))
            message += f" (installed versions of {name}: {installed})"
        return UnknownPack(message, reason="retired" if version else None, pack=name, version=version)

    def acquire(self, name: str, pack_hash: str | None = None) -> Loaded:
        """Lease the newest version of `name`, or with `pack_hash` exactly the version a recipe records."""
        lp = self.get(name) if pack_hash is None else self.get_version(name, pack_hash)
        lp.users += 1
        return lp

    async def reload(self) -> dict:
        """Load new or changed packs, refuse broken ones, retire removed ones. Returns
        {"loaded": [...], "refused": {folder: message}, "removed": [...], "unchanged": [...]}."""
        async with self._lock:
            report: dict = {"loaded": [], "refused": {}, "removed": [], "unchanged": []}
            found = find_packs(self.dirs)  # {folder path: folder}
            for key, folder in found.items():
                try:
                    stamp = _stamp(folder)
                except OSError as e:
                    report["refused"][key] = f"{folder}: cannot be read ({e})"
                    continue
                if self._folders.get(key, (None, None))[1] == stamp:
                    report["unchanged"].append(self._folders[key][0][0])
                    continue
                dup = self._duplicates.get(key)  # refused while another folder served it: still so?
                if self._refused_stamps.get(key) == stamp and (
                        dup is None or self._served_elsewhere(dup[0], key, found) == dup[1]):
                    report["refused"][key] = self.refused[key]
                    continue
                try:
                    name = await self._swap_in(key, folder, stamp, found)
                except Exception as e:  # any error refuses this pack only, until its files change
                    reason = _one_line(e, folder)
                    if isinstance(e, _Duplicate):
                        log.warning("pack refused while the other copy serves: %s", reason)
                        self._duplicates[key] = (e.version, e.where)
                    else:
                        log.warning("pack refused until its files change: %s", reason)
                        self._duplicates.pop(key, None)
                    if not isinstance(e, PackError):
                        log.debug("pack %s: the error in full", folder, exc_info=e)
                    self.refused[key] = report["refused"][key] = reason
                    self._refused_stamps[key] = stamp
                    continue
                self.refused.pop(key, None)
                self._refused_stamps.pop(key, None)
                self._duplicates.pop(key, None)
                report["loaded"].append(name)
            for key in [k for k in self.refused if k not in found]:  # a refused folder that was removed
                self.refused.pop(key)
                self._refused_stamps.pop(key, None)
                self._duplicates.pop(key, None)
            for key in list(self._folders):
                if key not in found:
                    version, _ = self._folders.pop(key)
                    if self._drop(version, key):
                        report["removed"].append(version[0])
            self._refresh()
            self.reloads += 1
            return report

    def _served_elsewhere(self, version: tuple[str, str], key: str, found: dict[str, Path]) -> str | None:
        """The folder other than `key`, still present, that serves `version` (name, content hash); None if none."""
        lp = self.versions.get(version[0], {}).get(version[1])
        where = None if lp is None else str(lp.pack.path)
        return where if where is not None and where != key and where in found else None

    def _drop(self, version: tuple[str, str], key: str) -> bool:
        """Retire `version` if the folder `key` serves it; True if it did."""
        name, h = version
        lp = self.versions.get(name, {}).get(h)
        if lp is None or str(lp.pack.path) != key:
            return False
        self._retire(self.versions[name].pop(h))
        if not self.versions[name]:
            del self.versions[name]
        return True

    def _refresh(self) -> None:
        """`loaded` (the newest version of each name) and `by_id` from `versions`."""
        self.loaded = {name: max(vs.values(), key=lambda lp: pack_order(lp.pack))
                       for name, vs in sorted(self.versions.items())}
        self.by_id = {pack_id_of(name): name for name in self.loaded}

    async def _swap_in(self, key: str, folder: Path, stamp: tuple, found: dict[str, Path]) -> str:
        o = self.options
        fp16 = o.precision == "fp16" or (o.precision == "auto" and self.providers[0] == "CUDAExecutionProvider")
        pack, runners, caps = await asyncio.to_thread(load_runners, folder, self.providers, self.threads,
                                                      o.max_batch, o.tune_batch, fp16)
        other = self.by_id.get(pack.pack_id)
        if other is not None and other != pack.name:
            raise PackError(f"{folder}: pack {pack.name!r} has the same short id as {other!r}; rename one")
        version = (pack.name, pack.content_hash)
        if (where := self._served_elsewhere(version, key, found)) is not None:
            raise _Duplicate(f"{folder}: pack {_label(pack)} (content {pack.content_hash}) is already served "
                             f"from {where}; remove or rename one", version, where)
        for h, other_lp in self.versions.get(pack.name, {}).items():
            if h != pack.content_hash and h[:8] == pack.content_hash[:8] and str(other_lp.pack.path) != key:
                raise PackError(f"{folder}: pack {_label(pack)!r} has the same 8-hex content prefix as "
                                f"{_label(other_lp.pack)!r}, so recipes could not tell them apart; re-export one")
        old = self.versions.get(pack.name, {}).get(pack.content_hash)
        if old is not None and str(old.pack.path) != key:  # its folder was removed: this copy takes over
            log.info("pack %s now served from %s (%s was removed)", _label(pack), folder, old.pack.path)
        lp = Loaded(pack, runners, caps)
        tag = f"{pack.name}@{pack.content_hash[:8]}"
        for model, runner in runners.items():
            if model == "upscaler":  # runs inside the generator's and decoder's batches
                continue
            run, n_out = chunked(runner, caps[model]), len(runner.output_names)
            if pack.has_upscaler and model in ("generator", "decoder"):
                run, n_out = chained(run, chunked(runners["upscaler"], caps["upscaler"])), 2
            metrics = self._metrics.setdefault((tag, model), ModelMetrics())
            lp.batchers[model] = Batcher(
                f"{tag}/{model}", run, n_out, max_batch=o.max_batch,
                max_wait_s=o.max_wait_s, queue_size=o.queue_size, timeout_s=o.timeout_s, metrics=metrics).start()
        previous = self._folders.get(key, (None, None))[0]
        if previous not in (None, version):  # the folder now holds another pack or version
            self._drop(previous, key)
        self.versions.setdefault(pack.name, {})[pack.content_hash] = lp
        self._seen[(pack.name, pack.content_hash[:8])] = str(pack.manifest.get("version", "?"))
        self._folders[key] = (version, stamp)
        if old is not None and old is not lp:
            self._retire(old)
        self._refresh()
        log.info("pack %s %s loaded from %s (content %s, run chunks %s, providers %s)", pack.name,
                 pack.manifest.get("version", "?"), folder, pack.content_hash, caps, self.providers)
        return pack.name

    def _retire(self, lp: Loaded) -> None:
        lp.retired = True
        if lp.users == 0:
            lp.idle.set()

        async def drain() -> None:
            await lp.idle.wait()
            for b in lp.batchers.values():
                await b.close()

        task = asyncio.get_running_loop().create_task(drain())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def close(self) -> None:
        for vs in self.versions.values():
            for lp in vs.values():
                self._retire(lp)
        self.versions.clear()
        self.loaded.clear()
        self.by_id.clear()
        self._folders.clear()
        if self._retiring:
            await asyncio.gather(*self._retiring)

    def supervision(self) -> dict:
        """Batch collector crashes and restarts since start, over every model and pack version."""
        ms = self._metrics.values()
        return {"crashes": sum(m.crashes for m in ms), "restarts": sum(m.restarts for m in ms),
                "aborted": sum(m.aborted for m in ms)}

    def metrics(self) -> dict:
        """{pack name: {model: ...}} for the newest version of each name; older versions
        served beside it under "name@<8-hex content hash>"."""
        out: dict = {}
        for name, vs in self.versions.items():
            for h, lp in vs.items():
                label = name if lp is self.loaded.get(name) else f"{name}@{h[:8]}"
                out[label] = {m: {**b.metrics.to_dict(b.queue_depth), "run_chunk": lp.caps[m]}
                              for m, b in lp.batchers.items()}
        return out
