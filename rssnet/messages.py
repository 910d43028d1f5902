"""The result stream's messages as a subscriber reads them (CONTRACTS §1): a ``result``
header and arrays become a :class:`Result`, a ``status`` header a :class:`Status`, each
field checked, with :class:`~rssnet.errors.WireError` naming the topic and the field at
fault.  :mod:`rssnet.client` delivers them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rssnet.errors import WireError
from rssnet.wire import Message

FloatArray = npt.NDArray[np.floating[Any]]


@dataclass(frozen=True, slots=True, eq=False)
class Result:
    """One separated spectrum (``rssnet.<instrument>.result``).

    ``components`` is (C, L) and ``abundances`` (C,); an ``error`` result has C = 0.
    """

    topic: str
    instrument: str
    session: str
    seq: int
    t_acq_ns: int
    t_pub_ns: int
    status: str
    error: str | None
    model_name: str
    model_sha256: str
    axis: FloatArray  # (L,) cm⁻¹
    mixture: FloatArray  # (L,)
    components: FloatArray  # (C, L)
    abundances: FloatArray  # (C,)
    header: dict[str, Any]
    arrays: Mapping[str, npt.NDArray[Any]]

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def latency_ns(self) -> int:
        """Daemon latency: publish minus acquisition time."""
        return self.t_pub_ns - self.t_acq_ns

    @property
    def method(self) -> str:
        """The stage that answered: ``rssnet`` (the network on this spectrum alone),
        ``stream`` (run-level refinement) or ``library``; ``rssnet`` for a daemon that
        predates the key."""
        return str(self.header.get("method", "rssnet"))

    @property
    def run(self) -> str | None:
        """The stream-refinement run id (a new one after a change of sample); None when
        the daemon runs without stream refinement."""
        stream = self.header.get("stream")
        return str(stream["run"]) if isinstance(stream, Mapping) and "run" in stream else None


@dataclass(frozen=True, slots=True, eq=False)
class Status:
    """A periodic health message (``rssnet.<instrument>.status``)."""

    topic: str
    instrument: str
    session: str
    seq: int
    t_pub_ns: int
    status: str
    error: str | None
    state: str
    counters: dict[str, Any]
    rates: dict[str, Any]
    header: dict[str, Any]


Received = Result | Status | Message


def as_typed(message: Message) -> Received:
    """A :class:`Result`/:class:`Status` for those streams; :class:`WireError` if malformed."""
    if message.stream == "result":
        return _result(message)
    if message.stream == "status":
        return _status(message)
    return message


def _result(message: Message) -> Result:
    h, a, topic = message.header, message.arrays, message.topic
    for array in a.values():
        # Views on the received frames (no copy); read-only so that one consumer cannot
        # change what another sees, as a frozen Result promises.
        array.flags.writeable = False
    for name in ("axis", "mixture", "components", "abundances"):
        if a[name].dtype.kind != "f":
            raise WireError(f"{topic}: array {name!r} has dtype {a[name].dtype.str}, not float")
    axis, mixture, components, shares = a["axis"], a["mixture"], a["components"], a["abundances"]
    if axis.ndim != 1:
        raise WireError(f"{topic}: axis has shape {axis.shape}, expected (L,)")
    length = axis.shape[0]
    if mixture.shape != (length,):
        raise WireError(f"{topic}: mixture has shape {mixture.shape}, expected ({length},)")
    if components.ndim != 2 or components.shape[1] != length:
        raise WireError(
            f"{topic}: components have shape {components.shape}, expected (C, {length})"
        )
    if shares.shape != (components.shape[0],):
        raise WireError(
            f"{topic}: abundances have shape {shares.shape}, expected ({components.shape[0]},)"
        )
    model = h["model"]
    name, sha = model.get("name"), model.get("sha256")
    if not isinstance(name, str) or not isinstance(sha, str):
        raise WireError(f"{topic}: model needs 'name' and 'sha256' strings, got {model!r}")
    return Result(
        topic=topic,
        instrument=h["instrument"],
        session=h["session"],
        seq=h["seq"],
        t_acq_ns=h["t_acq_ns"],
        t_pub_ns=h["t_pub_ns"],
        status=h["status"],
        error=h.get("error"),
        model_name=name,
        model_sha256=sha,
        axis=axis,
        mixture=mixture,
        components=components,
        abundances=shares,
        header=h,
        arrays=a,
    )


def _status(message: Message) -> Status:
    h, topic = message.header, message.topic
    counters, rates, state = h.get("counters", {}), h.get("rates", {}), h.get("state", "")
    if not isinstance(counters, dict) or not isinstance(rates, dict):
        raise WireError(f"{topic}: status 'counters' and 'rates' must be maps")
    if not isinstance(state, str):
        raise WireError(f"{topic}: status 'state' {state!r} is not a string")
    return Status(
        topic=topic,
        instrument=h["instrument"],
        session=h["session"],
        seq=h["seq"],
        t_pub_ns=h["t_pub_ns"],
        status=h["status"],
        error=h.get("error"),
        state=state,
        counters=counters,
        rates=rates,
        header=h,
    )
