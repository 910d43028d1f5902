"""Stream refinement end to end: rssnetd replays a run of spectra over real ZeroMQ; the
subscriber sees ``method = "stream"`` once the run warms up, a new run id after the sample
changes, and a forced new run from the control socket."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rssnet.formats.evalset import EvalSet, write_eval_set
from rssnet.testing.daemon import Subscriber, write_config
from rssnet.testing.ops import ControlClient
from rssnet.training.synthesis import add_noise
from rssnet.training.synthetic import pseudo_library
from rssnet.wire import Message

AXIS = np.linspace(150.0, 1250.0, 1100, dtype=np.float32)
FIRST, SECOND = 24, 36  # spectra of the first sample, then of the second


def write_runs(path: Path) -> None:
    """One instrument run: FIRST spectra of substances (0, 1), then SECOND of (2, 3),
    proportions drawn afresh for every spectrum, 20 dB noise (white + brown)."""
    lib = pseudo_library(AXIS, n=4, seed=11).spectra
    rng = np.random.default_rng(12)
    a = rng.uniform(0.05, 0.95, size=FIRST + SECOND)
    pair = np.where(np.arange(FIRST + SECOND)[:, None] < FIRST, [0, 1], [2, 3])
    sources = lib[pair] * np.stack([a, 1.0 - a], axis=1)[:, :, None]  # M, 2, L
    mixtures = add_noise(sources.sum(1), np.full(len(a), 20.0), rng)
    write_eval_set(path, EvalSet(mixtures, sources.astype(np.float32), AXIS, None))


def _stream(m: Message) -> dict[str, Any]:
    stream: dict[str, Any] = m.header["stream"]
    return stream


def start(
    tmp_path: Path, model: Path, start_daemon: Any, rate_hz: float, **sections: dict[str, Any]
) -> tuple[Any, Subscriber, ControlClient]:
    """rssnetd replaying the run at ``rate_hz`` with a control socket; a subscriber."""
    data = tmp_path / "run.npz"
    write_runs(data)
    config = write_config(
        tmp_path / "d.toml",
        data,
        model,
        control={"endpoint": "tcp://127.0.0.1:0"},
        instrument__replay={"rate_hz": rate_hz},
        **sections,
    )
    daemon = start_daemon(config)
    sub = Subscriber(daemon.wait_log("bound")["endpoint"])
    return daemon, sub, ControlClient(daemon.wait_log("control_serving")["endpoint"])


def test_replayed_run_is_refined_and_a_change_of_sample_starts_a_new_run(
    tmp_path: Path, tiny_model: Path, start_daemon: Any
) -> None:
    # Paced, so the control command below lands while the second sample still plays.
    daemon, sub, control = start(
        tmp_path, tiny_model, start_daemon, 15.0, stream={"enabled": True, "window": 16}
    )
    try:
        while len(sub.results) < FIRST + 12:
            sub.receive(timeout_s=120.0)  # generous: CI machines are small and shared
        request = json.dumps({"cmd": "new-run", "reason": "operator swapped the vial"})
        reply = json.loads(control.request_raw(request.encode())[0])
        assert reply["ok"] and reply["data"] == {"reason": "operator swapped the vial"}
        final = sub.until_stopped(timeout_s=180.0)
    finally:
        sub.close()
        control.close()
    assert daemon.wait() == 0

    results = sub.results
    assert len(results) == FIRST + SECOND
    assert all(m.header["status"] == "ok" for m in results)
    runs = [_stream(m)["run"] for m in results]
    methods = [m.header["method"] for m in results]
    # The first spectrum of a run is the network's; the run warms up into refined answers.
    assert methods[0] == "rssnet" and _stream(results[0])["new_run"]
    assert set(runs[:FIRST]) == {runs[0]}
    assert methods[8:FIRST].count("stream") >= 12, methods
    # The change of sample is detected at the first spectrum of the second sample.
    assert runs[FIRST] != runs[0]
    assert "change of sample" in _stream(results[FIRST])["fallback"]
    assert methods[FIRST] == "rssnet"
    # The forced run starts later with the operator's reason, and refines again after it.
    forced = [i for i in range(FIRST + 1, len(results)) if _stream(results[i]).get("new_run")]
    assert len(forced) == 1, [(i, _stream(results[i])) for i in forced]
    assert _stream(results[forced[0]])["fallback"] == "requested: operator swapped the vial"
    assert len(set(runs)) == 3
    for m in results:
        s = _stream(m)
        assert 1 <= s["n"] <= 16
        assert m.arrays["components"].shape == (2, m.arrays["axis"].shape[0])
        if m.header["method"] == "stream":
            assert s["residual"] is not None and 0.0 <= s["residual"] < 1.0
            assert "fallback" not in s
    # Status carries the stage's counters.
    stats = final.header["stream"]
    assert stats["runs"] == 3 and stats["changes"] == 1
    assert stats["refined"] == methods.count("stream")
    logged = [e for e in daemon.log if e.get("event") == "stream_new_run"]
    assert [e["run"] for e in logged] == sorted(set(runs), key=runs.index)


def test_stream_off_every_result_says_rssnet_and_new_run_is_refused(
    tmp_path: Path, tiny_model: Path, start_daemon: Any
) -> None:
    daemon, sub, control = start(tmp_path, tiny_model, start_daemon, 30.0)
    try:
        reply = json.loads(control.request_raw(b"new-run")[0])
        final = sub.until_stopped(timeout_s=180.0)
    finally:
        sub.close()
        control.close()
    assert daemon.wait() == 0
    assert reply == {"ok": False, "cmd": "new-run", "error": "stream refinement is off"}
    assert {m.header["method"] for m in sub.results} == {"rssnet"}
    assert all("stream" not in m.header for m in sub.results)
    assert final.header["stream"] is None
