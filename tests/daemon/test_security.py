"""CURVE on a real rssnetd: an allowed client receives and is answered, a client with an
unknown key and a plain client get nothing; ``rssnet keys``; loopback detection."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import zmq
import zmq.auth

from rssnet.daemon.security import is_loopback
from rssnet.testing.daemon import daemons, make_replay_dir, write_config
from rssnet.testing.ops import ControlClient
from rssnet.tools.keys import main as keys_main
from rssnet.wire import decode

REPO = Path(__file__).resolve().parents[2]


def test_keys_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert keys_main(["--dir", str(tmp_path), "server", "alice"]) == 0
    for name in ("server", "alice"):
        public, secret = zmq.auth.load_certificate(str(tmp_path / f"{name}.key_secret"))
        assert secret is not None and len(public) == 40
        assert zmq.auth.load_certificate(str(tmp_path / f"{name}.key"))[0] == public
        assert stat.S_IMODE((tmp_path / f"{name}.key_secret").stat().st_mode) == 0o600
    before = (tmp_path / "alice.key_secret").read_bytes()
    assert keys_main(["--dir", str(tmp_path), "alice"]) == 1  # never overwritten
    assert (tmp_path / "alice.key_secret").read_bytes() == before
    assert keys_main(["--dir", str(tmp_path), "../evil"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("tcp://127.0.0.1:5560", True),
        ("tcp://localhost:1", True),
        ("tcp://[::1]:5560", True),
        ("ipc:///run/rssnet/x", True),
        ("tcp://0.0.0.0:5560", False),
        ("tcp://*:5560", False),
        ("tcp://192.168.1.4:5560", False),
        ("tcp://eth0:5560", False),
    ],
)
def test_loopback_detection(endpoint: str, loopback: bool) -> None:
    assert is_loopback(endpoint) is loopback


def _sub(
    context: zmq.Context[zmq.Socket[bytes]], endpoint: str, server: bytes, keys: Path | None
) -> zmq.Socket[bytes]:
    sock = context.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    if keys is not None:
        public, secret = zmq.auth.load_certificate(str(keys))
        sock.setsockopt(zmq.CURVE_SERVERKEY, server)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret)  # type: ignore[arg-type]  # not None
    sock.setsockopt(zmq.SUBSCRIBE, b"rssnet.")
    sock.connect(endpoint)
    return sock


def test_curve_allowed_client_receives_others_do_not(tmp_path: Path, tiny_model: Path) -> None:
    keys, allowed = tmp_path / "keys", tmp_path / "keys" / "clients"
    assert keys_main(["--dir", str(keys), "server", "mallory"]) == 0
    assert keys_main(["--dir", str(allowed), "alice"]) == 0
    server_public = zmq.auth.load_certificate(str(keys / "server.key"))[0]
    replay = tmp_path / "spectra"
    make_replay_dir(replay, 5)
    config = write_config(
        tmp_path / "d.toml",
        replay,
        tiny_model,
        security={
            "curve": True,
            "server_secret_key": str(keys / "server.key_secret"),
            "allowed_clients": str(allowed),
        },
        publish={"wait_for_subscribers": 1, "linger_s": 1.0},
    )
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    with daemons(REPO) as start:
        daemon = start(config)
        endpoint = daemon.wait_log("bound")["endpoint"]
        # Intruders first: had either got in, the daemon would start streaming for it.
        mallory = _sub(context, endpoint, server_public, keys / "mallory.key_secret")
        plain = _sub(context, endpoint, server_public, None)
        daemon.wait_log("curve_client_denied")
        alice = _sub(context, endpoint, server_public, allowed / "alice.key_secret")
        results = []
        while True:
            assert alice.poll(60_000), "the allowed client received nothing"
            message = decode(alice.recv_multipart())
            if message.stream == "result":
                results.append(message)
            elif message.header["state"] == "stopped":
                break
        assert [m.seq for m in results] == list(range(5))
        assert not mallory.poll(0) and not plain.poll(0)
        assert daemon.wait() == 0
    for sock in (alice, mallory, plain):
        sock.close()
    context.term()


def test_curve_control_socket(tmp_path: Path, tiny_model: Path) -> None:
    keys, allowed = tmp_path / "keys", tmp_path / "clients"
    assert keys_main(["--dir", str(keys), "server", "mallory"]) == 0
    assert keys_main(["--dir", str(allowed), "alice"]) == 0
    server_public = zmq.auth.load_certificate(str(keys / "server.key"))[0]
    replay = tmp_path / "spectra"
    make_replay_dir(replay, 2)
    config = write_config(
        tmp_path / "d.toml",
        replay,
        tiny_model,
        security={
            "curve": True,
            "server_secret_key": str(keys / "server.key_secret"),
            "allowed_clients": str(allowed),
        },
        control={"endpoint": "tcp://127.0.0.1:0"},
        publish={"wait_for_subscribers": 1, "wait_timeout_s": 120.0},
    )

    def client(key: Path) -> ControlClient:
        public, secret = zmq.auth.load_certificate(str(key))
        return ControlClient(
            control_endpoint,
            CURVE_SERVERKEY=server_public,
            CURVE_PUBLICKEY=public,
            CURVE_SECRETKEY=secret,
        )

    with daemons(REPO) as start:
        daemon = start(config)
        control_endpoint = daemon.wait_log("control_serving")["endpoint"]
        alice, mallory = client(allowed / "alice.key_secret"), client(keys / "mallory.key_secret")
        try:
            assert alice.request("status")["data"]["state"] in ("starting", "waiting")
            with pytest.raises(TimeoutError):
                mallory.request("status", timeout_s=1.0)
            cfg = alice.request("config")["data"]
            assert cfg["security"]["server_secret_key"] == "<redacted>"
            assert json.dumps(cfg).count(str(keys)) == 0
        finally:
            alice.close()
            mallory.close()
        daemon.terminate()
        assert daemon.wait() == 0


def test_exposed_bind_without_curve_is_logged() -> None:
    from structlog.testing import capture_logs

    from rssnet.daemon.security import warn_if_exposed

    with capture_logs() as logs:
        assert warn_if_exposed("tcp://0.0.0.0:5560", "publish", curve=False)
        assert not warn_if_exposed("tcp://0.0.0.0:5560", "publish", curve=True)
        assert not warn_if_exposed("tcp://127.0.0.1:5560", "control", curve=False)
    assert [(e["event"], e["endpoint"]) for e in logs] == [("insecure_bind", "tcp://0.0.0.0:5560")]


def test_bad_key_files_are_config_errors(tmp_path: Path) -> None:
    from rssnet.config.schema import SecurityConfig
    from rssnet.daemon.security import start_curve
    from rssnet.errors import ConfigError

    assert keys_main(["--dir", str(tmp_path), "server"]) == 0
    (tmp_path / "clients").mkdir()

    def config(secret: str, clients: str) -> SecurityConfig:
        return SecurityConfig(
            curve=True, server_secret_key=tmp_path / secret, allowed_clients=tmp_path / clients
        )

    assert start_curve(SecurityConfig()) is None
    with pytest.raises(ConfigError, match="server_secret_key"):
        start_curve(config("missing.key_secret", "clients"))
    with pytest.raises(ConfigError, match="holds no secret key"):
        start_curve(config("server.key", "clients"))  # the public half by mistake
    with pytest.raises(ConfigError, match="no client"):
        start_curve(config("server.key_secret", "clients"))  # empty allow-list
    with pytest.raises(ConfigError, match="not a folder"):
        start_curve(config("server.key_secret", "nowhere"))
