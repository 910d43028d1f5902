"""The one numpy SI-SNR (rssnet.sisnr) gives what the engine self-test's and the analysis
metrics' own copies gave before they were merged (values recorded from those copies)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from rssnet.analysis.metrics import si_snr
from rssnet.engine.selftest import si_snr_db

RNG = np.random.default_rng(42)
REF = RNG.standard_normal((2, 3, 16))
EST = REF + 0.3 * RNG.standard_normal((2, 3, 16))


@pytest.mark.parametrize(
    ("score", "est", "want"),
    [
        (si_snr, EST, [[10.692648577257325, 14.660481056189337, 3.769135749399698],
                       [9.865119080241415, 7.369572070799907, 7.72981355887069]]),
        (si_snr_db, EST, [[10.692648630126333, 14.660481150199836, 3.769135773905834],
                          [9.865119125882003, 7.36957211617585, 7.729813597871642]]),
        # The self-test's 1e-20 floor: a perfect (rescaled) copy scores ~220 dB.
        (si_snr_db, 3 * REF, [[220.52151204405024, 219.11521549579862, 217.64519542491024],
                              [219.96806468578055, 218.24506332452475, 218.40056383442607]]),
    ],
)  # fmt: skip
def test_values_unchanged(
    score: Callable[[np.ndarray, np.ndarray], np.ndarray], est: np.ndarray, want: list[list[float]]
) -> None:
    np.testing.assert_allclose(score(est, REF), want, rtol=1e-13)


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        si_snr(np.zeros(8), np.zeros(9))
