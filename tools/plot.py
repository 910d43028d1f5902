"""``rssnet plot``: one separation result as a PNG a person can read.

    rssnet plot (--input FILE.npz [--index I] [--model FILE] | --endpoint E [--timeout S])
                [--library PATH] --out FILE.png

Sources: a saved result (``.npz`` with ``axis``, ``mixture``, ``components``), a CONTRACTS §3
set (mixture ``--index`` is separated with the model), or the next live ``result`` message.
The figure shows the mixture with the non-negative fit of the components and the residual,
then each component as separated, labelled with its identification and its share of the
fit, with the top matched library spectrum overlaid (dashed, least-squares scaled).
Axes in cm⁻¹.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import nnls

from rssnet.errors import RssnetError, WireError
from rssnet.formats.library import SpectralLibrary, library_report

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Result:
    axis: F32
    mixture: F32
    components: F32  # C, L
    title: str


def from_npz(path: str | Path, index: int = 0, model: str | None = None) -> Result:
    """A saved result, or row ``index`` of a §3 set separated by the model."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        raise RssnetError(f"{p}: not a readable .npz: {err}") from err
    if {"axis", "mixture", "components"} <= arrays.keys():
        return Result(
            np.asarray(arrays["axis"], np.float32),
            np.asarray(arrays["mixture"], np.float32),
            np.asarray(arrays["components"], np.float32),
            p.name,
        )
    if "mixtures" not in arrays:
        raise RssnetError(f"{p}: neither a saved result (axis, mixture, components) nor a set")
    from rssnet.analysis.evaluate import load_eval_data, separate_rssnet
    from rssnet.model.checkpoint import load_checkpoint

    ckpt = load_checkpoint(model)
    data = load_eval_data(p, ckpt.axis) if "sources" in arrays else None
    if data is None:
        from rssnet.formats.evalset import read_eval_set
        from rssnet.preprocessing.axis import resample

        ev = read_eval_set(p)
        mixtures = np.stack([resample(ev.axis, r, ckpt.axis) for r in ev.mixtures])
    else:
        mixtures = data.mixtures
    if not 0 <= index < len(mixtures):
        raise RssnetError(f"{p}: --index {index} outside 0..{len(mixtures) - 1}")
    est = separate_rssnet(ckpt.model, mixtures[index : index + 1], show=False)[0]
    return Result(ckpt.axis, mixtures[index], est, f"{p.name}[{index}] · {ckpt.name}")


def from_stream(endpoint: str, timeout_s: float) -> Result:
    """The next valid ``result`` message on ``endpoint``."""
    import zmq

    from rssnet.wire import decode

    ctx: zmq.Context[Any] = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt_string(zmq.SUBSCRIBE, "rssnet.")
    sub.connect(endpoint)
    try:
        while sub.poll(int(timeout_s * 1000)):
            try:
                msg = decode(sub.recv_multipart())
            except WireError as err:
                sys.stderr.write(f"# bad message skipped: {err}\n")
                continue
            if msg.stream != "result" or msg.header["status"] != "ok":
                continue
            a = msg.arrays
            title = f"{msg.header['instrument']} seq={msg.seq} · {msg.header['model'].get('name')}"
            return Result(
                np.array(a["axis"], np.float32),
                np.array(a["mixture"], np.float32),
                np.array(a["components"], np.float32),
                title,
            )
    finally:
        sub.close()
    raise RssnetError(f"no result message on {endpoint} within {timeout_s:g} s")


def render(result: Result, out: str | Path, library: str | SpectralLibrary | None = None) -> Path:
    """Write the PNG; identification and library overlays only with ``library`` (a path,
    or a library already on ``result.axis``)."""
    from rssnet.analysis.eval_plots import pyplot
    from rssnet.analysis.identify import Identifier, orient

    axis, mix = result.axis, result.mixture
    comps = orient(result.components, mix)
    coef, _ = nnls(comps.T.astype(np.float64), mix.astype(np.float64))
    fitted = comps * coef[:, None].astype(np.float32)  # C, L
    area = np.abs(fitted).sum(axis=1)
    shares = area / area.sum() if area.sum() > 0 else np.zeros_like(area)
    residual = mix - fitted.sum(axis=0)
    idents = None
    lib_spectra = None
    if library is not None:
        from rssnet.formats.library import LibraryCache

        lib = (
            library if isinstance(library, SpectralLibrary) else LibraryCache(library).on_axis(axis)
        )
        ident = Identifier(lib.spectra, lib.names, lib.ids)
        idents = ident.identify(comps, top_k=3)
        lib_spectra = lib.spectra
    plt = pyplot()
    n = comps.shape[0]
    fig, axes = plt.subplots(n + 1, 1, figsize=(9, 2.6 * (n + 1)), dpi=110, sharex=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    top = axes[0]
    top.plot(axis, mix, color="0.3", lw=0.9, label="mixture")
    top.plot(
        axis, fitted.sum(axis=0), color=colors[0], lw=0.9, label="fit: Σ cₖ·componentₖ (cₖ ≥ 0)"
    )
    top.plot(axis, residual, color="tab:red", lw=0.7, alpha=0.8, label="residual")
    top.set_title(result.title)
    for k in range(n):
        ax = axes[k + 1]
        color = colors[(k + 1) % len(colors)]
        label = f"component {k + 1} ({100 * shares[k]:.0f}%)"
        if idents is not None:
            it = idents[k]
            label += f": {it.name} (score {it.score:.2f})"
            if lib_spectra is not None:
                ref = lib_spectra[it.candidates[0].index].astype(np.float64)
                scale = float(ref @ comps[k]) / float(ref @ ref) if ref.any() else 0.0
                ax.plot(
                    axis,
                    scale * ref,
                    "--",
                    color="0.45",
                    lw=0.9,
                    label=f"library: {it.candidates[0].name} ({it.candidates[0].id})",
                )
        # The component as separated (the fit may give it no weight, it is still shown).
        ax.plot(axis, comps[k], color=color, lw=1.0, label=label)
    for ax in axes:
        ax.set_ylabel("intensity (a.u.)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("Raman shift (cm⁻¹)")
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="rssnet plot", description="Draw one separation result as a PNG a person can read."
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="saved result .npz or a CONTRACTS §3 set")
    src.add_argument("--endpoint", help="take the next live result from this PUB endpoint")
    p.add_argument("--index", type=int, default=0, help="row of a §3 set")
    p.add_argument("--model", help="model file for a §3 set (default: shipped model)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (live)")
    p.add_argument("--library", help="RRUFF .zip or directory: identify and overlay")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument(
        "--verbose", action="store_true", help="list each library spectrum skipped, and why"
    )
    args = p.parse_args(argv)
    try:
        if args.input:
            result = from_npz(args.input, args.index, args.model)
        else:
            result = from_stream(args.endpoint, args.timeout)
        library = None
        if args.library:
            from rssnet.formats.library import LibraryCache

            cache = LibraryCache(args.library, progress=True)
            library = cache.on_axis(result.axis)
            name = Path(args.library).name
            for line in library_report(library, name, args.verbose, cache.errors):
                sys.stderr.write(f"rssnet plot: {line}\n")
        path = render(result, args.out, library)
    except (RssnetError, OSError) as err:
        sys.stderr.write(f"rssnet plot: {err}\n")
        return 1
    sys.stdout.write(f"wrote {path}\n")
    return 0
