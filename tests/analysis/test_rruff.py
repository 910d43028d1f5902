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
