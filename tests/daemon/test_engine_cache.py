"""rssnetd under systemd's cache rule: with no ``[engine] cache_dir``, the ONNX export of a
model file lands in ``$CACHE_DIRECTORY`` (the unit's ``CacheDirectory=``), never in the
home directory, which ``ProtectSystem=strict``/``ProtectHome=`` leave unwritable."""

from __future__ import annotations

from pathlib import Path

import pytest

from rssnet.testing.daemon import daemons, make_replay_dir, write_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("configured", [False, True])
def test_export_cache_follows_config_then_cache_directory(
    tmp_path: Path, tiny_model: Path, configured: bool
) -> None:
    make_replay_dir(tmp_path / "spectra", 2)
    systemd_cache, own_cache = tmp_path / "var-cache-rssnet-t1", tmp_path / "own-cache"
    systemd_cache.mkdir()
    engine: dict[str, object] = {"backend": ["onnxruntime"]}
    if configured:
        engine["cache_dir"] = str(own_cache)
    config = write_config(
        tmp_path / "d.toml",
        tmp_path / "spectra",
        tiny_model,
        engine=engine,
        publish={"wait_for_subscribers": 0},
    )
    env = {
        "CACHE_DIRECTORY": str(systemd_cache),
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
        "HOME": str(tmp_path / "home"),
    }
    with daemons(cwd=REPO) as start:
        daemon = start(config, env=env)
        assert daemon.wait(timeout_s=240) == 0, daemon.log[-5:]
    expected = own_cache if configured else systemd_cache
    assert daemon.wait_log("engine_cache")["dir"] == str(expected)
    assert daemon.wait_log("backend_ready")["backend"] == "onnxruntime"
    assert list((expected / "onnx").glob("*-fp32-opset17.onnx"))
    unused = systemd_cache if configured else own_cache
    assert not (unused / "onnx").exists()
    assert not (tmp_path / "xdg" / "rssnet").exists() and not (tmp_path / "home").exists()
