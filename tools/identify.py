"""``rssnet identify``: name the separated components of a live result stream.

    rssnet identify --library PATH [--endpoint E] [--publish E2] [--top-k 3] [--count N]

Subscribes to ``rssnet.<instrument>.result`` messages, matches each component against the
library, fits abundances, prints one line per spectrum and republishes
``rssnet.<instrument>.identification`` messages on its own PUB socket (``--publish``) in
the framing of CONTRACTS §1.  An identification message's header adds ``result_seq``,
``result_session``, ``library`` and ``components`` (one map per component: ``name``,
``score``, ``candidates`` [{``name``, ``id``, ``score``}]) and ``source``; its frames are
``abundances`` (C,) ``<f4`` and ``scores`` (C, top_k) ``<f4``.  Malformed messages are
reported and skipped.

``source`` says whose components were named.  Where the result comes from the model the
shipped selector was trained for (its ``model.sha256``), the selector picks one of five
answers for the spectrum (:mod:`rssnet.analysis.selector`; the header's ``answer`` names
it): ``network``, ``library`` (NN-OMP's library spectra), or ``hybrid`` (the network's
components refined by, or blended with, their library matches).  For other models, or with
``--hybrid-selector none``, the gate rule: ``library`` when a fit of the mixture with C
library spectra leaves at most ``--hybrid-gate`` (default 2) times the residual the
network's components leave (:mod:`rssnet.analysis.hybrid`), else ``network``.  ``stream``:
the daemon's run-level refinement answered, and its components are named as published
(``run`` names the run).  ``--hybrid-gate 0`` always matches the published components.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt
import zmq

from rssnet.analysis import baselines as bl
from rssnet.analysis import selector as sel
from rssnet.analysis.hybrid import (
    DEFAULT_GATE,
    library_answer,
    load_selector,
    separate_selected,
    unmixing_library,
)
from rssnet.analysis.identify import (
    DEFAULT_THRESHOLD,
    Identification,
    Identifier,
    abundances,
    orient,
)
from rssnet.errors import LibraryError, PublishError, WireError
from rssnet.formats.library import LibraryCache
from rssnet.publish import ZmqPublisher
from rssnet.wire import DEFAULT_ENDPOINT, Message, decode

DEFAULT_PUBLISH = "tcp://127.0.0.1:5561"


@dataclass(frozen=True)
class Identified:
    """What one result message yields: ``line`` to print, ``header``/``arrays`` to publish."""

    line: str
    header: dict[str, Any]
    arrays: dict[str, npt.NDArray[np.float32]]
    idents: list[Identification]
    note: str | None = None  # said once: why the selector does not answer for this model


class IdentifyService:
    """Turns result messages into identifications (one identifier per model axis)."""

    def __init__(
        self,
        library: LibraryCache,
        top_k: int = 3,
        threshold: float = DEFAULT_THRESHOLD,
        gate: float = DEFAULT_GATE,
        selector: sel.Selector | None = None,
    ) -> None:
        self.library = library
        self.top_k = top_k
        self.threshold = threshold
        self.gate = gate
        self.selector = selector
        self._identifiers: dict[bytes, tuple[Identifier, bl.Library]] = {}
        self._noted: set[str] = set()  # models the selector was said not to apply to

    def _matchers(self, axis: npt.NDArray[Any]) -> tuple[Identifier, bl.Library]:
        a = np.ascontiguousarray(axis, dtype=np.float32)
        key = a.tobytes()
        if key not in self._identifiers:
            lib = self.library.on_axis(a)
            self._identifiers[key] = (
                Identifier(lib.spectra, lib.names, lib.ids, threshold=self.threshold),
                unmixing_library(lib.spectra, list(lib.names)),
            )
        return self._identifiers[key]

    def handle(self, message: Message) -> Identified:
        """Identify one decoded result; WireError when its arrays do not fit together."""
        axis = message.arrays["axis"]
        mixture = message.arrays["mixture"]
        comps = message.arrays["components"]
        if axis.ndim != 1 or mixture.shape != axis.shape:
            raise WireError(
                f"{message.topic}: axis {axis.shape} and mixture {mixture.shape} differ"
            )
        if comps.ndim != 2 or comps.shape[1] != axis.shape[0] or comps.shape[0] < 1:
            raise WireError(f"{message.topic}: components {comps.shape} are not (C, {axis.size})")
        if not (np.isfinite(comps).all() and np.isfinite(mixture).all()):
            raise WireError(f"{message.topic}: non-finite values in mixture or components")
        comps = orient(comps, mixture)
        ident, unmixing = self._matchers(axis)
        # What is matched: the published components, i.e. the run-level refinement's when
        # the daemon's stream stage answered ("stream"), else the network's.
        source = "stream" if message.header.get("method") == "stream" else "network"
        answer, note = None, None
        sha = str((message.header.get("model") or {}).get("sha256", ""))
        why = self.selector.applies(sha, len(comps)) if self.selector else "no selector"
        if why and self.selector is not None and source != "stream" and sha not in self._noted:
            self._noted.add(sha)
            note = f"selector does not answer for model {sha[:16]}: {why}; the gate rule does"
        if self.selector is not None and source != "stream" and not why:
            hyb = separate_selected(ident, unmixing, mixture[None], comps[None], self.selector)
            comps, answer = hyb.components[0], sel.CANDIDATES[int(np.asarray(hyb.choice)[0])]
            source = {"net": "network", "lib": "library"}.get(answer, "hybrid")
        elif self.gate > 0:
            # Only the gate: per-component refinement is an evaluation option.
            from_library, lib_comps = library_answer(
                unmixing, mixture[None], comps[None], self.gate
            )
            if from_library[0]:
                comps, source = lib_comps[0], "library"
        idents = ident.identify(comps, top_k=self.top_k)
        shares = abundances(mixture, comps)
        scores = np.zeros((len(idents), self.top_k), dtype=np.float32)
        for i, it in enumerate(idents):
            scores[i, : len(it.candidates)] = [c.score for c in it.candidates]
        head = message.header
        header: dict[str, Any] = {
            "t_acq_ns": int(head["t_acq_ns"]),
            "status": "ok",
            "model": dict(head["model"]),
            "result_seq": int(head["seq"]),
            "result_session": str(head["session"]),
            "library": self.library.path,
            "source": source,
            "answer": answer,
            "run": (head.get("stream") or {}).get("run"),
            "components": [
                {
                    "name": it.name,
                    "score": round(it.score, 4),
                    "candidates": [
                        {"name": c.name, "id": c.id, "score": round(c.score, 4)}
                        for c in it.candidates
                    ],
                }
                for it in idents
            ],
        }
        parts = [
            f"c{k} {it.name} ({it.score:.2f}) {100 * float(s):5.1f}%"
            + (
                f" [next: {it.candidates[1].name} {it.candidates[1].score:.2f}]"
                if len(it.candidates) > 1
                else ""
            )
            for k, (it, s) in enumerate(zip(idents, shares, strict=True))
        ]
        line = f"{head['instrument']} seq={head['seq']} [{source}] | " + " | ".join(parts)
        arrays = {"abundances": shares, "scores": scores}
        return Identified(line, header, arrays, idents, note)


def identification_publisher(
    endpoint: str, context: zmq.Context[Any] | None = None
) -> ZmqPublisher:
    """The daemon's publisher (rssnet.publish), bound at ``endpoint``, for identifications:
    their own ``session``, a ``seq`` per instrument's topic, drops counted.  Each message
    names its instrument (``publish(..., instrument=...)``), not this publisher."""
    return ZmqPublisher("identify", endpoint, linger_s=1.0, context=context)


def run(
    service: IdentifyService,
    endpoint: str,
    republisher: ZmqPublisher | None = None,
    topic: str = "rssnet.",
    count: int | None = None,
    timeout_s: float | None = None,
    out: TextIO = sys.stdout,
    context: zmq.Context[Any] | None = None,
) -> int:
    """Identify results until ``count`` were handled (or no message for ``timeout_s``);
    returns the number identified."""
    ctx = context or zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt_string(zmq.SUBSCRIBE, topic)
    sub.connect(endpoint)
    done = 0
    try:
        while count is None or done < count:
            if not sub.poll(None if timeout_s is None else int(timeout_s * 1000)):
                out.write(f"# no message for {timeout_s:g} s on {endpoint}\n")
                break
            frames = sub.recv_multipart(copy=False)
            try:
                message = decode(frames)
                if message.stream != "result":
                    continue
                if message.header["status"] != "ok":
                    out.write(f"# {message.topic} seq={message.seq}: error result skipped\n")
                    continue
                result = service.handle(message)
            except WireError as err:
                out.write(f"# bad message skipped: {err}\n")
                continue
            except (LibraryError, ValueError, RuntimeError, np.linalg.LinAlgError) as err:
                # One result the library cannot match (another instrument's axis, a fit that
                # fails) must not end the client for every result after it.
                out.write(f"# {message.topic} seq={message.seq}: not identified: {err}\n")
                continue
            if result.note:
                out.write(f"# {result.note}\n")
            out.write(result.line + "\n")
            out.flush()
            done += 1
            if republisher is not None:
                inst = str(message.header["instrument"])
                republisher.publish("identification", result.header, result.arrays, instrument=inst)
    finally:
        sub.close()
    return done


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="rssnet identify", description="Name the separated components of a live result stream."
    )
    p.add_argument("--library", required=True, help="RRUFF .zip or directory of spectra")
    p.add_argument("--endpoint", default=DEFAULT_ENDPOINT, help="daemon PUB endpoint")
    p.add_argument("--topic", default="rssnet.", help="topic prefix to subscribe to")
    p.add_argument(
        "--publish",
        default=DEFAULT_PUBLISH,
        help="bind here to republish identifications ('none' to disable)",
    )
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="best cosine score below which a component is 'unknown'",
    )
    p.add_argument(
        "--hybrid-selector",
        default="auto",
        metavar="PATH|auto|none",
        help="trees that pick the answer per spectrum (default auto: the shipped selector, for "
        "results of the model it was trained for; none: the gate rule)",
    )
    p.add_argument(
        "--hybrid-gate",
        type=float,
        default=None,
        help="gate rule: name the library spectra that fit the mixture when their residual is "
        "at most this times the network components' (default 2; 0: always the network's "
        "components); setting it selects the gate rule",
    )
    p.add_argument("--count", type=int, help="stop after N results")
    p.add_argument("--timeout", type=float, help="give up after S seconds without a message")
    args = p.parse_args(argv)
    try:
        gate = DEFAULT_GATE if args.hybrid_gate is None else args.hybrid_gate
        selector = load_selector(args.hybrid_selector, args.hybrid_gate is not None)
        service = IdentifyService(
            LibraryCache(args.library), args.top_k, args.threshold, gate, selector
        )
        ctx: zmq.Context[Any] = zmq.Context.instance()
        repub = None if args.publish == "none" else identification_publisher(args.publish, ctx)
        try:
            done = run(service, args.endpoint, repub, args.topic, args.count, args.timeout)
        finally:
            if repub is not None:
                repub.close()
    except KeyboardInterrupt:
        return 0
    except (LibraryError, PublishError, sel.SelectorError, zmq.ZMQError) as err:
        sys.stderr.write(f"rssnet identify: {err}\n")
        return 1
    return 0 if args.count is None or done >= args.count else 1
