"""End to end: rssnetd replaying a folder where some files are broken in the ways that used
to kill it (issue 15: a zero-byte .npz → EOFError, a damaged .npy header → TokenError, a
non-numeric array → ValueError, each exit 1).  Every good file must still be published and
the daemon must end cleanly, with each bad file named in its log and status."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from rssnet.testing.daemon import Subscriber, daemons, make_replay_dir, write_config

REPO = Path(__file__).resolve().parents[2]


def _npz(**arrays: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)  # type: ignore[arg-type]  # numpy stub is too narrow
    return out.getvalue()


def _damaged_header_npz(axis: np.ndarray) -> bytes:
    good = zipfile.ZipFile(io.BytesIO(_npz(mixtures=np.ones((2, axis.size), np.float32))))
    member = bytearray(good.read("mixtures.npy"))
    member[20:30] = b"((((\"'''''"  # cut inside a string: numpy's tokenizer gives up
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("mixtures.npy", bytes(member))
        zf.writestr("axis.npy", zipfile.ZipFile(io.BytesIO(_npz(axis=axis))).read("axis.npy"))
    return out.getvalue()


def test_rssnetd_skips_broken_binary_files_and_publishes_every_good_one(
    tmp_path: Path, tiny_model: Path
) -> None:
    replay = tmp_path / "spectra"
    names = make_replay_dir(replay, 12)
    axis = np.linspace(150.0, 1250.0, 300).astype(np.float32)
    good_set = np.abs(np.sin(np.outer(np.arange(1, 4), axis / 100.0))).astype(np.float32)
    files = {
        "s002_zero.npz": b"",
        "s004_header.npz": _damaged_header_npz(axis),
        "s006_text.npz": _npz(mixtures=np.full((2, axis.size), "x"), axis=axis),
        "s008_complex.npz": _npz(mixtures=good_set.astype(np.complex64), axis=axis),
        "s010_set.npz": _npz(mixtures=good_set, axis=axis),  # good: three spectra
    }
    for name, data in files.items():
        (replay / name).write_bytes(data)
    expected = names + [f"s010_set.npz[{i}]" for i in range(3)]
    config = write_config(tmp_path / "d.toml", replay, tiny_model)
    with daemons(cwd=REPO) as start:
        daemon = start(config)
        sub = Subscriber(daemon.wait_log("bound")["endpoint"])
        try:
            final = sub.until_stopped()
        finally:
            sub.close()
        assert daemon.wait() == 0
    published = [Path(m.header["source"]).name for m in sub.results]
    assert sorted(published) == sorted(expected)
    assert all(m.header["status"] == "ok" for m in sub.results)
    health = final.header["driver"]
    assert health["bad_files"] == 4 and health["state"] == "finished"
    skipped = {
        Path(e["file"]).name: e["error"] for e in daemon.log if e["event"] == "replay_skipped"
    }
    assert set(skipped) == {"s002_zero.npz", "s004_header.npz", "s006_text.npz", "s008_complex.npz"}
    assert "empty file" in skipped["s002_zero.npz"]
    assert "TokenError" in skipped["s004_header.npz"]
    assert "not a number type" in skipped["s006_text.npz"]
    assert "complex" in skipped["s008_complex.npz"]
    assert not [e for e in daemon.log if e.get("level") == "error"]
