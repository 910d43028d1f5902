"""Fresh training mixtures on the fly, in DataLoader worker processes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from rssnet.training.synthesis import synthesize
from rssnet.types import FloatArray


class MixtureStream(IterableDataset[tuple[torch.Tensor, torch.Tensor]]):
    """Endless batches (mixtures (B, L'), sources (B, C, L')) from a library.

    ``crop`` > 0 trains on random windows of that many points: the network is
    convolutional/chunked, so a crop costs proportionally less (docs/model.md measures
    whether full-length accuracy holds).  Each worker and each DDP rank draws from its own
    seed, so no two produce the same mixtures.
    """

    def __init__(
        self,
        spectra: FloatArray,
        names: list[str],
        batch: int,
        n_components: int = 2,
        crop: int = 0,
        snr_range: tuple[float, float] = (10.0, 20.0),
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.spectra = spectra
        self.names = names
        self.batch = batch
        self.c = n_components
        self.crop = crop
        self.snr_range = snr_range
        self.seed = seed

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        wid = 0 if info is None else info.id
        rng = np.random.default_rng([self.seed, wid])
        length = self.spectra.shape[1]
        while True:
            mix = synthesize(self.spectra, self.names, self.batch, rng, self.c, self.snr_range)
            x, s = mix.mixtures, mix.sources
            if 0 < self.crop < length:
                # One window per sample: a batch then covers several regions of the axis.
                starts = rng.integers(0, length - self.crop + 1, size=len(x))
                idx = starts[:, None] + np.arange(self.crop)  # B, crop
                x = np.take_along_axis(x, idx, axis=1)
                s = np.take_along_axis(s, idx[:, None, :].repeat(s.shape[1], axis=1), axis=2)
            yield (
                torch.from_numpy(np.ascontiguousarray(x)),
                torch.from_numpy(np.ascontiguousarray(s)),
            )
