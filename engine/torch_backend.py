"""The torch backend: runs an rssnet model file with PyTorch (CPU or CUDA).

Inference runs under ``torch.inference_mode`` (no autograd bookkeeping) on one thread
unless told otherwise: the fastest CPU option measured (docs/benchmarks.md).  ``compile=True``
wraps the model in ``torch.compile``: measured ~1.3× faster per call on this CPU but minutes
of compiling at start-up, so it is off by default (docs/benchmarks.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog
import torch

from rssnet.engine.selftest import run_self_test
from rssnet.errors import BackendUnavailable, EngineError, SpectrumRejected
from rssnet.model.checkpoint import load_checkpoint
from rssnet.types import ModelInfo

log = structlog.get_logger(__name__)


class TorchBackend:
    """PyTorch inference of an rssnet model file."""

    name = "torch"

    def __init__(
        self,
        model_path: str | Path | None = None,
        device: str = "cpu",
        max_batch: int = 8,
        threads: int = 1,
        *,
        compile: bool = False,
        self_test: bool = True,
    ) -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(f"torch backend: device {device!r} but CUDA is not available")
        if device != "cpu" and not device.startswith("cuda"):
            raise BackendUnavailable(f"torch backend: unknown device {device!r}")
        if threads:
            # Process-wide in torch: the daemon runs one backend, so this is its setting.
            # Default 1: with other load on the CPU, torch's OpenMP threads wait on each
            # other at every barrier; 2 threads measured 10× slower (docs/benchmarks.md).
            # 0 keeps torch's own default (one thread per core).
            torch.set_num_threads(threads)
        ckpt = load_checkpoint(model_path)
        self.device = torch.device(device)
        self.model = ckpt.model.to(self.device).eval()
        self._run: Any = self.model
        if compile:
            # dynamic=True: one graph for every batch size instead of a recompile per size.
            self._run = torch.compile(self.model, dynamic=True)
        self.max_batch = max_batch
        self.checkpoint = ckpt
        self.info = ModelInfo(
            name=ckpt.name,
            sha256=ckpt.sha256,
            axis=ckpt.axis,
            n_components=ckpt.config.n_components,
            config=ckpt.config.to_dict(),
        )
        if self_test:
            result = run_self_test(
                self.name, self.separate, ckpt.reference_input, ckpt.reference_output,
                source=ckpt.path,
            )
            if result is not None:
                log.info("self_test_passed", backend=self.name, device=device,
                         si_snr_db=round(result.si_snr_db, 1), rel_err=result.rel_err)

    def separate(self, mixtures: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        x = np.asarray(mixtures, np.float32)
        if x.ndim != 2 or x.shape[1] != self.info.length:
            raise SpectrumRejected(
                f"expected (batch, {self.info.length}) mixtures, got shape {x.shape}"
            )
        try:
            with torch.inference_mode():
                out = self._run(torch.from_numpy(x).to(self.device))  # B, C, L
            return np.asarray(out.float().cpu().numpy(), np.float32)
        except RuntimeError as err:
            raise EngineError(f"torch backend failed on a batch of {x.shape[0]}: {err}") from err

    def close(self) -> None:
        self.model = self.model.cpu()
        self._run = self.model
