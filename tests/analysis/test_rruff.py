"""Identification and unmixing on the real RRUFF library (skipped without ../shared/data)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rssnet.analysis import baselines as bl
from rssnet.analysis.identify import Identifier
from rssnet.errors import SpectrumFormatError
from rssnet.formats.library import SpectralLibrary
from rssnet.model.checkpoint import default_axis
from rssnet.training.synthesis import add_noise, synthesize

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def rruff(rruff_items: list[object]) -> Any:
    records = [r for r in rruff_items if not isinstance(r, SpectrumFormatError)]
    lib = SpectralLibrary.from_records(records, default_axis())
    assert len(lib) > 4000
    return lib


def test_noisy_rruff_spectra_are_named(rruff: Any) -> None:
    rng = np.random.default_rng(0)
    pick = rng.choice(len(rruff), 200, replace=False)
    noisy = add_noise(rruff.spectra[pick], np.full(200, 15.0, np.float32), rng)
    ident = Identifier(rruff.spectra, rruff.names, rruff.ids)
    found = [
        r.candidates[0].name == rruff.names[i]
        for r, i in zip(ident.identify(noisy, top_k=1), pick, strict=True)
    ]
    assert np.mean(found) > 0.9


def test_nnls_unmixes_rruff_mixtures_in_library(rruff: Any) -> None:
    sub = rruff.subset(np.arange(600))
    mix = synthesize(sub.spectra, sub.names, 30, np.random.default_rng(1))
    groups = np.unique([n.strip().lower() for n in sub.names], return_inverse=True)[1]
    lib = bl.Library(sub.spectra.T, groups=groups)
    comp = bl.top_components(lib, bl.unmix(lib, mix.mixtures, "nnls"), 2)
    truth = groups[mix.index]
    both = (np.sort(comp.groups, 1) == np.sort(truth, 1)).all(1)
    assert both.mean() > 0.7


@pytest.mark.slow
def test_shipped_selector_on_rruff_mixtures(rruff: Any) -> None:
    """The shipped model and selector end to end on real spectra: library substances take
    the library's answer; minerals absent from the library keep the network's level."""
    from rssnet.analysis.evaluate import separate_rssnet
    from rssnet.analysis.hybrid import choose_rule, separate_selected, unmixing_library
    from rssnet.analysis.metrics import separation_scores
    from rssnet.model.checkpoint import load_checkpoint

    ckpt = load_checkpoint(None)
    selector, note = choose_rule("auto", ckpt.sha256, 2)
    assert selector is not None and note is None
    rng = np.random.default_rng(5)
    keys = np.array([n.strip().lower() for n in rruff.names])
    absent = np.isin(keys, rng.choice(np.unique(keys), 300, replace=False))
    known, unknown = rruff.subset(np.flatnonzero(~absent)), rruff.subset(np.flatnonzero(absent))
    ident = Identifier(known.spectra, known.names, known.ids)
    library = unmixing_library(known.spectra, known.names)
    db: dict[str, dict[str, float]] = {}
    for part, lib in (("in library", known), ("absent", unknown)):
        mix = synthesize(lib.spectra, lib.names, 16, rng)
        est = separate_rssnet(ckpt.model, mix.mixtures, show=False)
        hyb = separate_selected(ident, library, mix.mixtures, est, selector)
        nnomp = bl.top_components(library, bl.unmix_nnomp(library, mix.mixtures, 2), 2).spectra
        db[part] = {
            name: float(separation_scores(c, mix.sources, mix.mixtures)["si_snri"].mean())
            for name, c in (("net", est), ("nnomp", nnomp), ("hybrid", hyb.components))
        }
        db[part]["library picks"] = float(np.mean(np.asarray(hyb.choice) == 1))
    inlib, out = db["in library"], db["absent"]
    assert inlib["library picks"] >= 0.75 and inlib["hybrid"] > inlib["net"] + 20, db
    assert inlib["hybrid"] > inlib["nnomp"] - 1.0, db
    assert out["hybrid"] > out["nnomp"] + 1.0 and out["hybrid"] > out["net"] - 1.5, db
