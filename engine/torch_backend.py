"""The torch backend: runs an rssnet model file with PyTorch (CPU or CUDA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from rssnet.errors import BackendUnavailable, EngineError, SpectrumRejected
from rssnet.model.checkpoint import load_checkpoint
from rssnet.types import ModelInfo


class TorchBackend:
    """Eager PyTorch inference under ``torch.inference_mode``."""

    name = "torch"

    def __init__(
        self,
        model_path: str | Path | None = None,
        device: str = "cpu",
        max_batch: int = 8,
        threads: int = 0,
    ) -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(f"torch backend: device {device!r} but CUDA is not available")
        if threads:
            torch.set_num_threads(threads)
        ckpt = load_checkpoint(model_path)
        self.device = torch.device(device)
        self.model = ckpt.model.to(self.device).eval()
        self.max_batch = max_batch
        self.checkpoint = ckpt
        self.info = ModelInfo(
            name=ckpt.name,
            sha256=ckpt.sha256,
            axis=ckpt.axis,
            n_components=ckpt.config.n_components,
            config=ckpt.config.to_dict(),
        )

    def separate(self, mixtures: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        x = np.asarray(mixtures, np.float32)
        if x.ndim != 2 or x.shape[1] != self.info.length:
            raise SpectrumRejected(
                f"expected (batch, {self.info.length}) mixtures, got shape {x.shape}"
            )
        try:
            with torch.inference_mode():
                out = self.model(torch.from_numpy(x).to(self.device))  # B, C, L
            return out.float().cpu().numpy()
        except RuntimeError as err:
            raise EngineError(f"torch backend failed on a batch of {x.shape[0]}: {err}") from err

    def close(self) -> None:
        self.model = self.model.cpu()
