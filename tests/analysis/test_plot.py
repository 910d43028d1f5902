"""``rssnet plot`` writes a non-trivial PNG from a saved result, a §3 set and a live stream."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import zmq
from analysis_helpers import two_mixes
from matplotlib.image import imread
from test_identify import AXIS, LIB, write_library

from rssnet.formats.evalset import EvalSet, write_eval_set
from rssnet.model.checkpoint import default_axis, save_checkpoint
from rssnet.model.config import PRESETS
from rssnet.model.rssnet import RSSNet
from rssnet.publish import ZmqPublisher
from rssnet.tools.plot import from_stream, main, render


def _check_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = imread(path)
    assert img.shape[0] > 300 and img.shape[1] > 300
    # lines of several colours on white: far from a blank or single-colour image
    assert len(np.unique(img[..., :3].reshape(-1, 3).round(2), axis=0)) > 20


def test_plot_saved_result_with_library(tmp_path: Path) -> None:
    mix, src, _ = two_mixes(LIB, 1, snr_db=20)
    saved = tmp_path / "result.npz"
    np.savez(saved, axis=AXIS, mixture=mix[0], components=src[0])
    out = tmp_path / "out" / "plot.png"
    lib = write_library(tmp_path / "lib")
    assert main(["--input", str(saved), "--library", str(lib), "--out", str(out)]) == 0
    _check_png(out)


def test_plot_eval_set_row_with_model(tmp_path: Path) -> None:
    mix, src, _ = two_mixes(LIB, 3, snr_db=20)
    data = tmp_path / "set.npz"
    write_eval_set(data, EvalSet(mixtures=mix, sources=src, axis=AXIS))
    model = tmp_path / "tiny.pt"
    save_checkpoint(model, RSSNet(PRESETS["tiny"]), default_axis())
    out = tmp_path / "row.png"
    argv = ["--input", str(data), "--index", "2", "--model", str(model), "--out", str(out)]
    assert main(argv) == 0
    _check_png(out)


def test_plot_live_result(tmp_path: Path) -> None:
    ctx = zmq.Context.instance()
    daemon = ZmqPublisher("lab1", "tcp://127.0.0.1:0", context=ctx, linger_s=0)
    got: dict[str, object] = {}
    worker = threading.Thread(target=lambda: got.update(r=from_stream(daemon.endpoint, 20.0)))
    worker.start()
    try:
        assert daemon.wait_for_subscribers(1, 10.0)
        mix, src, _ = two_mixes(LIB, 1, snr_db=20)
        arrays = {"axis": AXIS, "mixture": mix[0], "components": src[0], "abundances": [0.5, 0.5]}
        daemon.publish("result", {"status": "ok", "model": {"name": "m", "sha256": "0"}}, arrays)
        worker.join(30.0)
    finally:
        daemon.close()
    result = got["r"]
    path = render(result, tmp_path / "live.png")  # type: ignore[arg-type]  # set by the thread
    _check_png(path)


def test_plot_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "x.npz"
    np.savez(bad, something=np.zeros(3))
    assert main(["--input", str(bad), "--out", str(tmp_path / "x.png")]) == 1
