"""Per-mixture answers of every hybrid ingredient, cached for choosing the hybrid's gate.

    python bench/hybrid_candidates.py --library ../shared/data/rruff/excellent_unoriented.zip \
        --set mineral_val=SET.npz:mineral:train --set rruffid_inlib=SET.npz:rruff_id:all \
        --n 600 --out bench/out/hybrid-candidates

``--set NAME=FILE:SPLIT:PARTS`` scores FILE against the library part(s) of SPLIT (split
seed 0) named in PARTS (``train``, ``train+val``, ``all``): the library a user would have
for that set (validation sets get ``train``, so their minerals/samples stay unknown as the
test sets' are to ``train+val``).  One network inference per FILE serves all its sets.
Writes NAME.npz per set: the network's (oriented), NN-OMP's and the refined components
(``net``, ``lib``, ``ref60``, ``ref90``: M, C, L), the residual energies and noise level
the gate can use, and the true sources (:func:`rssnet.analysis.selector.compute`, as the
product computes them).  ``bench/hybrid_gate.py`` and ``bench/hybrid_selector.py`` read them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from rssnet.analysis import selector as sel
from rssnet.analysis.evaluate import load_eval_data, separate_rssnet
from rssnet.analysis.hybrid import residual_energy, unmixing_library
from rssnet.analysis.identify import Identifier, orient
from rssnet.formats.library import SpectralLibrary, load_library, split_library
from rssnet.model.checkpoint import load_checkpoint
from rssnet.preprocessing.steps import noise_sigma


def library_for(lib: SpectralLibrary, split: str, parts: str) -> SpectralLibrary:
    if parts == "all":
        return lib
    index = split_library(lib, by=split, seed=0)
    return lib.subset(np.concatenate([index[p] for p in parts.split("+")]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--library", required=True)
    p.add_argument("--set", action="append", required=True, metavar="NAME=FILE:SPLIT:PARTS")
    p.add_argument("--model")
    p.add_argument("--n", type=int, default=600)
    p.add_argument("--out", default="bench/out/hybrid-candidates")
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = load_checkpoint(args.model)
    full = load_library(args.library, ckpt.axis, progress=True)
    estimates: dict[str, np.ndarray] = {}
    for spec in args.set:
        name, rest = spec.split("=", 1)
        file, split, parts = rest.split(":")
        data = load_eval_data(file, ckpt.axis)
        mix, src = data.mixtures[: args.n], data.sources[: args.n]
        if file not in estimates:
            t0 = time.perf_counter()
            estimates[file] = orient(separate_rssnet(ckpt.model, mix), mix)  # M, C, L
            print(f"{file}: network {time.perf_counter() - t0:.0f} s", flush=True)
        net = estimates[file]
        lib = library_for(full, split, parts)
        library = unmixing_library(lib.spectra, lib.names)
        ident = Identifier(lib.spectra, lib.names, lib.ids)
        t0 = time.perf_counter()
        cands = sel.compute(ident, library, mix, net)  # the product's own candidates
        lib_comps = cands.answers["lib"].astype(np.float64)
        np.savez_compressed(
            out / f"{name}.npz",
            mixtures=mix,
            sources=src,
            **{k: cands.answers[k] for k in ("net", "lib", "ref60", "ref90")},
            r_lib=((mix.astype(np.float64) - lib_comps.sum(axis=1)) ** 2).sum(-1),
            r_net=residual_energy(mix, net),
            noise=np.array([noise_sigma(y) ** 2 * y.size for y in mix]),
            best_cos=cands.best_cos,
            library_size=len(lib.names),
        )
        print(
            f"{name}: {len(mix)} mixtures, library {len(lib.names)} spectra, "
            f"{time.perf_counter() - t0:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
