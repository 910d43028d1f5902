"""Identification against a synthetic library, abundances, hybrid refinement, and the live
``rssnet identify`` client over real ZeroMQ sockets."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from analysis_helpers import peak_library, two_mixes

from rssnet.analysis.identify import UNKNOWN, Identifier, abundances, orient, refine_hybrid
from rssnet.errors import LibraryError
from rssnet.formats.library import LibraryCache
from rssnet.publish import ZmqPublisher
from rssnet.tools.identify import (
    IdentifyService,
    identification_publisher,
    main,
    run,
)
from rssnet.wire import Message, decode, encode

AXIS = np.linspace(200.0, 1200.0, 400, dtype=np.float32)
LIB = peak_library(40, length=400, seed=5)  # L, N
NAMES = [f"Mineral{j}" for j in range(LIB.shape[1])]


def write_library(d: Path, lib: np.ndarray = LIB) -> Path:
    d.mkdir()
    for j in range(lib.shape[1]):
        rows = "\n".join(f"{x:.3f},{y:.6f}" for x, y in zip(AXIS, lib[:, j], strict=True))
        (d / f"Mineral{j}__R{j:05d}.txt").write_text(
            f"##NAMES=Mineral{j}\n##RRUFFID=R{j:05d}\n{rows}\n##END=\n"
        )
    return d


def test_top1_on_noisy_library_spectra() -> None:
    rng = np.random.default_rng(0)
    ident = Identifier(LIB.T, NAMES)
    noisy = LIB.T * rng.uniform(0.3, 3, (LIB.shape[1], 1)) + 0.05 * rng.normal(size=LIB.T.shape)
    result = ident.identify(noisy, top_k=3)
    assert np.mean([r.name == n for r, n in zip(result, NAMES, strict=True)]) >= 0.95
    assert all(len(r.candidates) == 3 for r in result)
    assert all(r.candidates[0].score >= r.candidates[1].score for r in result)


def test_unknown_below_threshold() -> None:
    ident = Identifier(LIB.T, NAMES)
    stranger = peak_library(5, length=400, seed=99).T
    names = [r.name for r in ident.identify(stranger)]
    assert names.count(UNKNOWN) >= 4


def test_same_mineral_counts_once() -> None:
    ident = Identifier(
        np.concatenate([LIB.T[:1], LIB.T[:1] * 0.9, LIB.T[1:5]]),
        ["Quartz", "quartz ", "A", "B", "C", "D"],
    )
    cands = ident.identify(LIB.T[0], top_k=3)[0].candidates
    assert [c.name.strip().lower() for c in cands].count("quartz") == 1


def test_orient_flips_negated_components() -> None:
    mix, src, _ = two_mixes(LIB, 4, snr_db=20)
    flipped = src.copy()
    flipped[:, 1] *= -2.0
    out = orient(flipped, mix)
    assert np.allclose(out[:, 0], src[:, 0]) and np.allclose(out[:, 1], 2.0 * src[:, 1])


def test_abundances_are_shares() -> None:
    comps = LIB.T[:2]
    mix = 0.25 * comps[0] + 0.75 * comps[1]
    shares = abundances(mix, comps)
    expected = np.array([0.25 * comps[0].sum(), 0.75 * comps[1].sum()])
    assert np.allclose(shares, expected / expected.sum(), atol=1e-3)
    assert shares.sum() == pytest.approx(1.0)


def test_hybrid_refines_confident_components() -> None:
    mix, src, _ = two_mixes(LIB, 10, snr_db=20)
    rng = np.random.default_rng(1)
    est = src + 0.03 * rng.normal(size=src.shape).astype(np.float32)  # a noisy "network"
    ident = Identifier(LIB.T, NAMES)
    refined, mask = refine_hybrid(ident, mix, est)
    assert mask.mean() > 0.8
    err_before = np.linalg.norm(est - src, axis=-1)[mask].mean()
    err_after = np.linalg.norm(refined - src, axis=-1)[mask].mean()
    assert err_after < 0.5 * err_before


def test_library_errors(tmp_path: Path) -> None:
    with pytest.raises(LibraryError, match="not found"):
        LibraryCache(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LibraryError, match="no readable spectra"):
        LibraryCache(tmp_path / "empty")
    cache = LibraryCache(write_library(tmp_path / "lib"))
    with pytest.raises(LibraryError, match="does not overlap"):
        cache.on_axis(np.linspace(2000, 3000, 10, dtype=np.float32))


def test_identify_client_live(tmp_path: Path) -> None:
    ctx = zmq.Context()
    daemon = ZmqPublisher("lab1", "tcp://127.0.0.1:0", context=ctx)
    repub = identification_publisher("tcp://127.0.0.1:0", ctx)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt_string(zmq.SUBSCRIBE, "rssnet.lab1.identification")
    sub.connect(repub.endpoint)
    assert repub.wait_for_subscribers(1, 10.0)
    service = IdentifyService(LibraryCache(write_library(tmp_path / "lib")))
    out = io.StringIO()
    worker = threading.Thread(
        target=run,
        args=(service, daemon.endpoint, repub),
        kwargs={"count": 3, "timeout_s": 20.0, "out": out, "context": ctx},
    )
    worker.start()
    try:
        assert daemon.wait_for_subscribers(1, 10.0)
        head = {"status": "ok", "model": {"name": "m", "sha256": "0" * 64}}
        mix, src, ids = two_mixes(LIB, 3, snr_db=25)
        # malformed ones first: a missing array, and components of the wrong length
        daemon.publish("result", head, {"axis": AXIS, "mixture": mix[0], "components": src[0]})
        daemon.publish(
            "result",
            head,
            {
                "axis": AXIS,
                "mixture": mix[0],
                "components": src[0, :, :10],
                "abundances": np.ones(2),
            },
        )
        # another instrument's axis, which the library does not cover: said, and skipped
        far = np.linspace(2000.0, 3000.0, 400, dtype=np.float32)
        daemon.publish(
            "result",
            head,
            {"axis": far, "mixture": mix[0], "components": src[0], "abundances": np.ones(2)},
        )
        for i in range(3):
            daemon.publish(
                "result",
                head,
                {"axis": AXIS, "mixture": mix[i], "components": src[i], "abundances": np.ones(2)},
            )
        worker.join(30.0)
        assert not worker.is_alive()
        lines = out.getvalue().splitlines()
        assert sum(line.startswith("# bad message") for line in lines) == 2
        skipped = [line for line in lines if "not identified" in line]
        assert len(skipped) == 1 and "seq=2" in skipped[0] and "does not overlap" in skipped[0]
        results = [line for line in lines if line.startswith("lab1 seq=")]
        assert len(results) == 3
        # Library mixtures: the library fit explains them, so its spectra are named.
        assert all("[library]" in line for line in results)
        assert f"Mineral{ids[0, 0]}" in results[0] and f"Mineral{ids[0, 1]}" in results[0]
        msgs = []
        while sub.poll(5000) and len(msgs) < 3:
            msgs.append(decode(sub.recv_multipart()))
        assert [m.seq for m in msgs] == [0, 1, 2]
        first = msgs[0]
        assert first.topic == "rssnet.lab1.identification"
        assert first.header["result_seq"] == 3  # the bad ones and the far axis took 0-2
        assert {c["name"] for c in first.header["components"]} == {
            f"Mineral{ids[0, 0]}",
            f"Mineral{ids[0, 1]}",
        }
        assert first.header["source"] == "library"
        assert first.arrays["scores"].shape == (2, 3)
        assert first.arrays["abundances"].sum() == pytest.approx(1.0, abs=1e-5)
    finally:
        worker.join(30.0)
        sub.close(linger=0)
        repub.close()
        daemon.close()
        ctx.term()


def _result_message(
    mix: np.ndarray, comps: np.ndarray, extra: dict[str, Any] | None = None
) -> Message:
    head = {
        "v": 1, "session": "s", "seq": 0, "instrument": "lab", "t_acq_ns": 0, "t_pub_ns": 0,
        "status": "ok", "model": {"name": "m", "sha256": "0"}, **(extra or {}),
    }  # fmt: skip
    arrays = {"axis": AXIS, "mixture": mix, "components": comps, "abundances": np.ones(2)}
    return decode([bytes(f) for f in encode("rssnet.lab.result", head, arrays)])


def test_identify_service_gate_source(tmp_path: Path) -> None:
    """Absent substances keep the network's components; gate 0 never uses the library."""
    present = LibraryCache(write_library(tmp_path / "all"))
    only_first = LibraryCache(write_library(tmp_path / "first", LIB[:, :20]))
    lib_rest = LIB[:, 20:]
    mix, src, _ = two_mixes(lib_rest, 6, snr_db=25, seed=3)
    noise = np.random.default_rng(4).normal(size=src.shape).astype(np.float32)
    est = src + 0.005 * noise  # a good network
    sources = {
        name: [service.handle(_result_message(mix[i], est[i])).header["source"] for i in range(6)]
        for name, service in {
            "absent": IdentifyService(only_first),
            "present, gate off": IdentifyService(present, gate=0),
            "present": IdentifyService(present),
        }.items()
    }
    assert sources["absent"].count("network") >= 5
    assert sources["present, gate off"] == ["network"] * 6
    assert sources["present"].count("library") >= 5


def test_identify_cli_bad_library(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--library", str(tmp_path / "missing"), "--publish", "none"]) == 1
    assert "library not found" in capsys.readouterr().err


def test_identify_names_the_stream_stages_components(tmp_path: Path) -> None:
    """A result refined by the daemon's stream stage is identified as such, with its run."""
    only_first = LibraryCache(write_library(tmp_path / "first", LIB[:, :20]))
    mix, src, _ = two_mixes(LIB[:, 20:], 2, snr_db=25, seed=5)
    stream = {"run": "ab12cd-00003", "n": 20, "residual": 0.04}
    service = IdentifyService(only_first)
    head = {"method": "stream", "stream": stream}
    refined = service.handle(_result_message(mix[0], src[0], head))
    plain = service.handle(_result_message(mix[1], src[1], {"method": "rssnet"}))
    assert (refined.header["source"], refined.header["run"]) == ("stream", "ab12cd-00003")
    assert (plain.header["source"], plain.header["run"]) == ("network", None)


def test_identify_service_selector_answers_for_its_model_only(tmp_path: Path) -> None:
    """The shipped selector picks an answer for results of the model it was trained for;
    other models' results get the gate rule, and a note says so once per model."""
    from rssnet.analysis.selector import CANDIDATES, Selector, default_selector_path

    selector = Selector.load(default_selector_path())
    present = LibraryCache(write_library(tmp_path / "all"))
    mix, src, _ = two_mixes(LIB, 4, snr_db=20, seed=6)
    rng = np.random.default_rng(7)
    est = (0.8 * src + 0.2 * src[:, ::-1] + 0.01 * rng.normal(size=src.shape)).astype(np.float32)
    service = IdentifyService(present, selector=selector)
    shipped = {"model": {"name": "default", "sha256": selector.model_sha256}}
    other = {"model": {"name": "other", "sha256": "f" * 64}}
    mine = [service.handle(_result_message(mix[i], est[i], shipped)) for i in range(4)]
    theirs = [service.handle(_result_message(mix[i], est[i], other)) for i in range(4)]
    source = {"net": "network", "lib": "library"}
    for r in mine:
        assert r.header["answer"] in CANDIDATES and r.note is None
        assert r.header["source"] == source.get(r.header["answer"], "hybrid")
    assert [r.header["answer"] for r in theirs] == [None] * 4
    assert {r.header["source"] for r in theirs} <= {"network", "library"}
    notes = [r.note for r in theirs if r.note]
    assert len(notes) == 1 and "selector does not answer for model ffffffffffffffff" in notes[0]
    # The stream stage's components are not the network's: the selector does not judge them
    # (the gate still may, as before).
    streamed = service.handle(_result_message(mix[0], est[0], shipped | {"method": "stream"}))
    assert streamed.header["answer"] is None and streamed.header["source"] in ("stream", "library")


def test_identify_cli_bad_selector(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "selector.npz"
    bad.write_bytes(b"PK\x03\x04 not really")
    argv = ["--library", str(write_library(tmp_path / "lib")), "--publish", "none"]
    assert main([*argv, "--hybrid-selector", str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "not a readable selector file" in err
