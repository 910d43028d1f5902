"""Where exports and engines are cached: ``[engine] cache_dir``, else systemd's
``$CACHE_DIRECTORY``, else the XDG cache; with the process's real environment variables
and real folders (an export lands where the rule says)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rssnet.config.load import load_config, parse_config
from rssnet.daemon.main import backend_options
from rssnet.engine.onnx_backend import OnnxBackend
from rssnet.engine.trt_cache import default_cache_dir, engine_cache_dir

CONFIG = """
[instrument]
name = "lab"
driver = "replay"
[instrument.replay]
path = "spectra"
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """$CACHE_DIRECTORY (made, as systemd makes it), $XDG_CACHE_HOME and $HOME, all set."""
    places = {
        "CACHE_DIRECTORY": tmp_path / "var-cache-rssnet-lab",
        "XDG_CACHE_HOME": tmp_path / "xdg",
        "HOME": tmp_path / "home",
    }
    places["CACHE_DIRECTORY"].mkdir()
    for name, path in places.items():
        monkeypatch.setenv(name, str(path))
    return places


def test_resolution_order(
    env: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = tmp_path / "configured"
    assert engine_cache_dir(configured) == configured
    assert engine_cache_dir(None) == env["CACHE_DIRECTORY"]
    monkeypatch.delenv("CACHE_DIRECTORY")
    assert engine_cache_dir(None) == env["XDG_CACHE_HOME"] / "rssnet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert engine_cache_dir(None) == env["HOME"] / ".cache" / "rssnet"


def test_several_cache_directories_take_the_first(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # CacheDirectory=a b gives CACHE_DIRECTORY=/var/cache/a:/var/cache/b.
    monkeypatch.setenv("CACHE_DIRECTORY", f"{env['CACHE_DIRECTORY']}:/var/cache/other")
    assert default_cache_dir() == env["CACHE_DIRECTORY"]


def test_rssnetd_hands_the_backends_the_resolved_folder(
    env: dict[str, Path], tmp_path: Path
) -> None:
    import os

    plain = parse_config(CONFIG)
    for name in ("onnxruntime", "tensorrt"):
        assert backend_options(plain, os.environ)[name]["cache_dir"] == env["CACHE_DIRECTORY"]
    configured = parse_config(CONFIG + f'[engine]\ncache_dir = "{tmp_path / "mine"}"\n')
    options = backend_options(configured, os.environ)
    assert options["onnxruntime"]["cache_dir"] == tmp_path / "mine"
    assert options["tensorrt"]["cache_dir"] == tmp_path / "mine"


def test_export_lands_in_cache_directory_not_in_home(env: dict[str, Path], tiny_pt: Path) -> None:
    backend = OnnxBackend(tiny_pt, threads=1)  # no cache_dir: the environment decides
    try:
        assert backend.path.parent == env["CACHE_DIRECTORY"] / "onnx"
        assert backend.path.is_file()
        # (onnxruntime itself keeps a device id under $XDG_CACHE_HOME/Microsoft: not ours.)
        assert not (env["XDG_CACHE_HOME"] / "rssnet").exists()
        assert not (env["HOME"] / ".cache" / "rssnet").exists()
    finally:
        backend.close()


def test_export_lands_in_xdg_cache_outside_systemd(
    env: dict[str, Path], tiny_pt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CACHE_DIRECTORY")
    backend = OnnxBackend(tiny_pt, threads=1)
    try:
        assert backend.path.parent == env["XDG_CACHE_HOME"] / "rssnet" / "onnx"
    finally:
        backend.close()


def test_relative_cache_dir_is_the_config_folders(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "c.toml"
    path.parent.mkdir()
    path.write_text(CONFIG + '[engine]\ncache_dir = "cache"\n')
    assert load_config(path).engine.cache_dir == tmp_path / "etc" / "cache"
