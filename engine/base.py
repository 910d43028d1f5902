"""The backend plug point: something that turns (B, L) mixtures into (B, C, L) components."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from rssnet.types import ModelInfo


@runtime_checkable
class Backend(Protocol):
    """A loaded, self-tested model on one runtime (torch, onnxruntime, tensorrt)."""

    name: str
    info: ModelInfo
    max_batch: int

    def separate(self, mixtures: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(B, L) float32 on ``info.axis`` → (B, C, L) float32 components.

        Raises ``SpectrumRejected`` for a wrong shape, ``EngineError`` if the runtime fails.
        """
        ...

    def close(self) -> None:
        """Free runtime resources; idempotent."""
