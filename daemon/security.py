"""CURVE encryption and client authentication for the PUB and control sockets.

With ``[security] curve = true`` both sockets become CURVE servers with the daemon's key
pair, and a ZAP authenticator (``zmq.auth``) admits only clients whose public key is in a
file in ``allowed_clients``.  Keys are the ZeroMQ certificate files ``rssnet keys`` writes
(``name.key`` public, ``name.key_secret`` secret).  Rotating a client key = dropping its
new ``.key`` into the folder and removing the old one, then restarting the daemon (the
allow-list is read at start).

Without CURVE, binding anything but loopback is allowed but logged as a warning: results
then travel in clear to anyone who can reach the port.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import structlog
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from rssnet.config.schema import SecurityConfig
from rssnet.errors import ConfigError

log = structlog.get_logger(__name__)

SocketOptions = dict[int, int | bytes]


def is_loopback(endpoint: str) -> bool:
    """True for ``ipc://``/``inproc://`` and for tcp on 127.0.0.0/8, ::1 or localhost."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a host name: reachable from elsewhere


def warn_if_exposed(endpoint: str, what: str, curve: bool) -> bool:
    """Log a warning when ``endpoint`` is reachable from other hosts without CURVE."""
    if curve or is_loopback(endpoint):
        return False
    log.warning(
        "insecure_bind",
        socket=what,
        endpoint=endpoint,
        hint="not loopback and [security] curve is off: anyone who can reach it can "
        "read (and, for control, query) it; see docs/operations.md",
    )
    return True


class Curve:
    """The daemon's CURVE identity and its running authenticator."""

    def __init__(self, config: SecurityConfig, context: zmq.Context[Any] | None = None) -> None:
        if config.server_secret_key is None or config.allowed_clients is None:
            message = "security: curve needs server_secret_key and allowed_clients"
            raise ConfigError("security", [message])
        self.public, self.secret = load_secret_key(config.server_secret_key)
        self.allowed = Path(config.allowed_clients)
        self.clients = allowed_keys(self.allowed)
        self._context = context or zmq.Context.instance()
        self._auth: ThreadAuthenticator | None = None

    def start(self) -> None:
        """Start the ZAP handler; must run before any CURVE socket accepts clients."""
        self._auth = ThreadAuthenticator(self._context, log=_QuietZapLog())
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(self.allowed))
        log.info("curve_enabled", allowed_clients=len(self.clients), folder=str(self.allowed))

    def server_options(self) -> SocketOptions:
        """Socket options that make a socket a CURVE server with this identity."""
        return {
            zmq.CURVE_SERVER: 1,
            zmq.CURVE_SECRETKEY: self.secret,
            zmq.CURVE_PUBLICKEY: self.public,
        }

    def stop(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None


def load_secret_key(path: Path) -> tuple[bytes, bytes]:
    """(public, secret) z85 keys from a ``.key_secret`` file; :class:`ConfigError` if bad."""
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as err:
        raise ConfigError(str(path), [f"security.server_secret_key: {err}"]) from err
    if secret is None:
        raise ConfigError(
            str(path),
            [
                f"security.server_secret_key: {str(path)!r} holds no secret key "
                "(give the .key_secret file, not the .key)"
            ],
        )
    return public, secret


def allowed_keys(folder: Path) -> list[bytes]:
    """The public keys of the ``*.key`` files in ``folder``; :class:`ConfigError` if none."""
    if not folder.is_dir():
        message = f"security.allowed_clients: {str(folder)!r} is not a folder"
        raise ConfigError(str(folder), [message])
    try:
        keys = list(zmq.auth.load_certificates(str(folder)).keys())
    except (OSError, ValueError) as err:
        raise ConfigError(str(folder), [f"security.allowed_clients: {err}"]) from err
    if not keys:
        raise ConfigError(
            str(folder), [f"security.allowed_clients: no client *.key files in {str(folder)!r}"]
        )
    return keys


class _QuietZapLog:
    """zmq.auth logs every accept/deny at INFO through stdlib logging; route the denials
    to structlog (they matter) and drop the chatter."""

    def debug(self, *args: Any, **kwargs: Any) -> None:
        text = _format(args)
        if text.startswith("DENIED"):
            log.warning("curve_client_denied", detail=text)

    def info(self, *args: Any, **kwargs: Any) -> None:
        pass

    def warning(self, *args: Any, **kwargs: Any) -> None:
        log.warning("zap", detail=_format(args))

    def error(self, *args: Any, **kwargs: Any) -> None:
        log.error("zap", detail=_format(args))

    def exception(self, *args: Any, **kwargs: Any) -> None:
        self.error(*args, **kwargs)


def _format(args: tuple[Any, ...]) -> str:
    if not args:
        return ""
    try:
        return str(args[0]) % args[1:]
    except (TypeError, ValueError):
        return " ".join(str(a) for a in args)


# Subscriptions are topic prefixes; anything longer than this is not one (the peer is
# disconnected by ZeroMQ before the message reaches the daemon).
MAX_SUBSCRIPTION_BYTES = 1024


def start_curve(config: SecurityConfig) -> Curve | None:
    """The running CURVE authenticator when ``[security] curve`` is on, else None.

    Raises :class:`ConfigError` for missing or unreadable key files (exit 78).
    """
    if not config.curve:
        return None
    curve = Curve(config)
    curve.start()
    return curve


def publisher_options(curve: Curve | None) -> SocketOptions:
    """Options for the PUB socket: inbound size limit, plus CURVE server keys if on."""
    options: SocketOptions = {zmq.MAXMSGSIZE: MAX_SUBSCRIPTION_BYTES}
    if curve is not None:
        options.update(curve.server_options())
    return options
