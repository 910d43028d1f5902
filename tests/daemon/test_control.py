"""The control socket on real ZeroMQ: malformed requests fuzzed with hypothesis (always an
error reply, the server lives on), oversized messages, and a real rssnetd answering
``status``, ``latest`` (decodable as a published result) and ``config`` (redacted)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rssnet.daemon.control import ControlServer, redact
from rssnet.testing.daemon import Subscriber, daemons, make_replay_dir, write_config
from rssnet.testing.ops import ControlClient, wait_until

REPO = Path(__file__).resolve().parents[2]
MAX_REQUEST = 256


@pytest.fixture(scope="module")
def server() -> Iterator[ControlServer]:
    control = ControlServer(
        "tcp://127.0.0.1:0",
        status=lambda: {"state": "running", "counters": {"acquired": 3}},
        latest=lambda: None,
        config=lambda: {"security": {"server_secret_key": "/k/s.key_secret"}},
        max_request_bytes=MAX_REQUEST,
    )
    control.start()
    yield control
    control.stop()


@pytest.fixture(scope="module")
def client(server: ControlServer) -> Iterator[ControlClient]:
    c = ControlClient(server.endpoint)
    yield c
    c.close()


def test_commands(client: ControlClient) -> None:
    assert client.request("status") == {
        "ok": True,
        "cmd": "status",
        "data": {"state": "running", "counters": {"acquired": 3}},
    }
    assert client.request('{"cmd": "ping"}')["data"] == "pong"
    assert client.request("latest") == {
        "ok": False,
        "cmd": "latest",
        "error": "no result published yet",
    }
    assert client.request("config")["ok"]


def test_redaction() -> None:
    value = {"security": {"server_secret_key": "/k/s", "curve": True}, "a": [{"token": "t"}]}
    assert redact(value) == {
        "security": {"server_secret_key": "<redacted>", "curve": True},
        "a": [{"token": "<redacted>"}],
    }


# Requests a confused or hostile client might send: any bytes, text, JSON of any shape.
REQUESTS = st.lists(
    st.one_of(
        st.binary(max_size=2 * MAX_REQUEST),
        st.text(max_size=80).map(str.encode),
        st.sampled_from([b"status", b"{", b"{}", b"[1]", b'{"cmd": 5}', b"\xff\xfe", b""]),
        st.dictionaries(st.text(max_size=8), st.integers(), max_size=3).map(
            lambda d: json.dumps(d).encode()
        ),
    ),
    min_size=0,
    max_size=3,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=REQUESTS)
def test_fuzzed_requests_always_get_a_reply(
    client: ControlClient, server: ControlServer, frames: list[bytes]
) -> None:
    reply = client.request_raw(*frames)
    head = json.loads(reply[0])
    valid = len(frames) == 1 and frames[0].strip() in {b"status", b"config", b"ping"}
    assert head["ok"] is valid or frames[0].strip().startswith(b"{")
    if not head["ok"]:
        assert isinstance(head["error"], str) and head["error"]
    # The server is alive and well after every request.
    assert client.request("status")["ok"]


def test_oversized_requests(client: ControlClient, server: ControlServer) -> None:
    (reply,) = client.request_raw(b"s" * (MAX_REQUEST + 1))
    assert "exceeds control.max_request_bytes" in json.loads(reply)["error"]
    # Far beyond MAXMSGSIZE, ZeroMQ drops the message and disconnects the peer without
    # reading it into memory; everyone else is still served.
    rogue = ControlClient(server.endpoint)
    try:
        rogue.socket.send_multipart([b"", b"x" * (64 * MAX_REQUEST)])
        assert client.request("status")["ok"]  # the server goes on
        assert not rogue.socket.poll(300)  # and the huge request got no answer
    finally:
        rogue.close()
    assert client.request("status")["ok"]


def test_rssnetd_control_status_latest_config(tmp_path: Path, tiny_model: Path) -> None:
    replay = tmp_path / "spectra"
    make_replay_dir(replay, 6)
    config = write_config(
        tmp_path / "d.toml",
        replay,
        tiny_model,
        control={"endpoint": "tcp://127.0.0.1:0", "max_request_bytes": 512},
        archive={"dir": str(tmp_path / "archive")},
        instrument__replay={"rate_hz": 50.0, "loop": True},
    )
    with daemons(REPO) as start:
        daemon = start(config)
        endpoint = daemon.wait_log("bound")["endpoint"]
        control = ControlClient(daemon.wait_log("control_serving")["endpoint"])
        sub = Subscriber(endpoint)  # the daemon waits for one subscriber
        try:
            wait_until(lambda: control.latest()[0]["ok"], 60, "a first result")
            while len(sub.results) < 5:
                sub.receive()
            status = control.request("status")["data"]
            # "behind" is running too: 50 Hz may outpace this CPU (the queue then fills).
            assert status["instrument"] == "t1" and status["state"] in ("running", "behind")
            assert status["session"] == sub.results[0].header["session"]
            assert status["counters"]["acquired"] >= 5
            assert status["archive"]["records"] >= 5 and status["archive"]["errors"] == 0
            assert status["watchdog"]["last_progress_s"] < 30
            # A late joiner gets the last result, decodable like any published one.  (The
            # subscriber may see a result a moment before the pipeline records it as latest.)
            wait_until(lambda: (control.latest()[1] or sub.results[0]).seq >= 4, 30, "latest")
            head, latest = control.latest()
            assert head == {"ok": True, "cmd": "latest"}
            assert latest is not None and latest.stream == "result"
            assert latest.header["session"] == status["session"]
            assert latest.seq >= 4 and latest.arrays["components"].shape[0] == 2
            cfg = control.request("config")["data"]
            assert cfg["instrument"]["name"] == "t1"
            assert cfg["control"]["max_request_bytes"] == 512
            # Malformed requests: each answered with an error; the daemon goes on.
            for bad in (b"\xff", b"{nope", b"x" * 600, b"shutdown", b'{"cmd": []}'):
                (reply,) = control.request_raw(bad)
                assert json.loads(reply)["ok"] is False

            @settings(max_examples=60, deadline=None, database=None)
            @given(frames=REQUESTS)
            def fuzz(frames: list[bytes]) -> None:
                head = json.loads(control.request_raw(*frames)[0])
                assert head["ok"] or head["error"]

            fuzz()  # hypothesis against the real daemon
            assert control.request("status")["data"]["state"] in ("running", "behind")
            assert daemon.process.poll() is None
        finally:
            control.close()
            sub.close()
        daemon.terminate()
        assert daemon.wait() == 0
