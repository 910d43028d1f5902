"""The TensorRT engine cache: where built engines and timing caches live, and when to rebuild.

A serialized TensorRT engine is only valid for the exact ONNX graph, TensorRT version, GPU
model (compute capability) and build settings it was made with, and deserializing a
foreign or altered engine is unsafe (an engine file is executable GPU code).  So:

* an engine is stored under ``<cache>/tensorrt/<digest of its EngineKey>/`` beside
  ``key.json`` (the full key and the engine file's SHA-256);
* it is loaded only from that computed place, only if ``key.json`` equals the current key
  and the file's hash matches (anything else: rebuild), and never through a symlink that
  leaves the cache;
* timing caches are shared by every build on the same TensorRT version and GPU.

Nothing here imports TensorRT: the key's runtime facts come from a :class:`KeyProvider`, so
the logic is tested without a GPU.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)

KEY_VERSION = 1


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where exports and engines are cached when no directory is configured, from
    ``environ`` (default ``os.environ``; the one place the engine layer reads it):

    1. ``$CACHE_DIRECTORY``: systemd creates it for the unit's ``CacheDirectory=`` and owns
       it for the service user.  Under ``ProtectSystem=strict`` and ``ProtectHome=`` the
       home directory is read-only or hidden, so ``~/.cache`` would fail there;
    2. ``$XDG_CACHE_HOME/rssnet``, else ``~/.cache/rssnet``.
    """
    env = os.environ if environ is None else environ
    systemd = env.get("CACHE_DIRECTORY", "")
    if systemd:
        # One absolute path per CacheDirectory= entry, ":"-separated: the first is ours.
        return Path(systemd.split(":")[0])
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rssnet"


def engine_cache_dir(configured: Path | None, environ: Mapping[str, str] | None = None) -> Path:
    """``[engine] cache_dir`` when set, else :func:`default_cache_dir`."""
    return configured if configured is not None else default_cache_dir(environ)


@dataclass(frozen=True)
class Profile:
    """The optimization profile: batch range (min/opt/max) for a fixed spectrum length."""

    min_batch: int
    opt_batch: int
    max_batch: int
    length: int

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(f"profile needs 1 <= min <= opt <= max batch, got {self!r}")
        if self.length < 1:
            raise ValueError(f"profile length must be >= 1, got {self.length!r}")


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; any difference means a rebuild."""

    onnx_sha256: str
    trt_version: str
    gpu_name: str
    compute_capability: str  # "8.7" (Orin), "9.0" (H100)
    precision: str  # "fp32" | "fp16": the ONNX graph's precision (strongly typed build)
    profile: Profile
    version: int = KEY_VERSION

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def digest(self) -> str:
        canonical = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def timing_digest(self) -> str:
        # Timing caches hold per-tactic timings: valid across graphs on the same GPU + TRT.
        facts = [self.trt_version, self.gpu_name, self.compute_capability, str(KEY_VERSION)]
        return hashlib.sha256("\0".join(facts).encode()).hexdigest()


class KeyProvider(Protocol):
    """The runtime facts of the key (TensorRT and GPU), behind a seam for tests."""

    def trt_version(self) -> str: ...

    def gpu(self) -> tuple[str, str]:
        """(GPU name, compute capability as "major.minor")."""
        ...


def make_key(
    onnx_sha256: str, precision: str, profile: Profile, provider: KeyProvider
) -> EngineKey:
    name, capability = provider.gpu()
    return EngineKey(
        onnx_sha256=onnx_sha256,
        trt_version=provider.trt_version(),
        gpu_name=name,
        compute_capability=capability,
        precision=precision,
        profile=profile,
    )


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


class EngineCache:
    """Engines and timing caches under ``root/tensorrt``."""

    ENGINE = "engine.plan"
    KEY = "key.json"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root) / "tensorrt"

    def entry_dir(self, key: EngineKey) -> Path:
        return self.root / key.digest()[:32]

    def timing_path(self, key: EngineKey) -> Path:
        return self.root / "timing" / f"{key.timing_digest()[:32]}.cache"

    def _inside(self, path: Path) -> bool:
        try:
            return path.resolve(strict=True).is_relative_to(self.root.resolve(strict=True))
        except OSError:
            return False

    def load(self, key: EngineKey) -> bytes | None:
        """The cached engine for ``key``, or None (with the reason logged) when there is none,
        it was built for another key, it is truncated/altered or it lies outside the cache."""
        folder = self.entry_dir(key)
        engine, stamp = folder / self.ENGINE, folder / self.KEY
        if not engine.exists() and not stamp.exists():
            log.info("trt_cache_miss", dir=str(folder))
            return None
        reason = ""
        if not (self._inside(engine) and self._inside(stamp)):
            reason = "engine or key file is missing or lies outside the cache"
        else:
            try:
                recorded = json.loads(stamp.read_text())
            except (OSError, ValueError) as err:
                recorded = None
                reason = f"unreadable {self.KEY}: {err}"
            if recorded is not None:
                data = engine.read_bytes()
                if recorded.get("key") != key.as_dict():
                    reason = "built for another key"
                elif recorded.get("engine_sha256") != _sha256_bytes(data):
                    reason = f"{engine} is truncated or altered (SHA-256 differs)"
                else:
                    log.info("trt_cache_hit", dir=str(folder))
                    return data
        log.warning("trt_cache_rebuild", dir=str(folder), reason=reason)
        self.discard(key)
        return None

    def store(self, key: EngineKey, engine: bytes) -> Path:
        folder = self.entry_dir(key)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.ENGINE
        # Engine first, key last: a crash in between leaves a key-less entry that load()
        # treats as invalid, never a key that vouches for a half-written engine.
        (folder / self.KEY).unlink(missing_ok=True)
        _write_atomic(path, engine)
        stamp = {"key": key.as_dict(), "engine_sha256": _sha256_bytes(engine)}
        _write_atomic(folder / self.KEY, json.dumps(stamp, indent=1).encode())
        return path

    def discard(self, key: EngineKey) -> None:
        folder = self.entry_dir(key)
        for name in (self.ENGINE, self.KEY):
            (folder / name).unlink(missing_ok=True)

    def load_timing(self, key: EngineKey) -> bytes:
        path = self.timing_path(key)
        if path.is_file() and self._inside(path):
            return path.read_bytes()
        return b""

    def store_timing(self, key: EngineKey, data: bytes) -> None:
        if data:
            path = self.timing_path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(path, data)

    def get_or_build(
        self, key: EngineKey, build: Callable[[bytes], tuple[bytes, bytes]]
    ) -> tuple[bytes, bool]:
        """(engine bytes, whether it was built now).  ``build(timing_cache) -> (engine,
        timing_cache)`` runs only when no valid cached engine exists."""
        cached = self.load(key)
        if cached is not None:
            return cached, False
        engine, timing = build(self.load_timing(key))
        self.store(key, engine)
        self.store_timing(key, timing)
        return engine, True
