"""How far a training run has got and how well it is doing, apart from the run's state:
the learning-rate schedule, the budget (progress, and when to stop on time or steps), the
validation metrics, and the running averages on the progress bar.  ``rssnet.training.train``
ties them together."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from rssnet.training.config import TrainConfig, TrainSection
from rssnet.training.loss import pairwise_si_snr, pit_si_snr
from rssnet.training.synthesis import Mixtures


def lr_at(progress: float, step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine from ``lr`` to ``min_lr`` over the run's progress (0..1:
    the larger of the step and time fractions, so time-limited runs still anneal)."""
    t = cfg.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    p = min(max(progress, 0.0), 1.0)
    return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1.0 + math.cos(math.pi * p))


class Budget:
    """Where the run stands against its limits.  ``max_minutes`` and ``max_steps`` span every
    resume and shape the schedule; ``session_minutes`` ends this invocation alone, always on
    wall time, without changing the schedule (a fixed GPU window ends on time)."""

    def __init__(self, t: TrainSection, seconds_done: float) -> None:
        # The budget clock: wall time, or this process's CPU time, which keeps runs comparable
        # on a machine shared with other work ("accuracy per CPU-hour", docs/model.md).
        self.clock: Callable[[], float] = time.process_time if t.clock == "cpu" else time.monotonic
        self.t0 = self.clock() - seconds_done
        self.session_end = (
            time.monotonic() + t.session_minutes * 60 if t.session_minutes else math.inf
        )
        self.max_minutes, self.max_steps = t.max_minutes, t.max_steps

    def seconds(self) -> float:
        """Budget seconds used, earlier sessions included."""
        return self.clock() - self.t0

    def progress(self, step: float) -> float:
        """0..1 (past 1 when spent): the larger of the time and step fractions."""
        return max(
            self.seconds() / (self.max_minutes * 60),
            step / self.max_steps if self.max_steps else 0.0,
        )

    def spent(self, progress: float) -> str:
        """Why to stop before the next step ("budget" or "session"), or ""."""
        if progress >= 1.0:
            return "budget"
        if time.monotonic() >= self.session_end:
            return "session"
        return ""


def input_si_snr(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """SI-SNR (dB) of each unseparated mixture ``x`` (B, L) against each of its sources ``s``
    (B, C, L), as (B, C): the baseline that SI-SNRi measures the improvement from."""
    return torch.diagonal(
        pairwise_si_snr(x.unsqueeze(1).expand_as(s).contiguous(), s), dim1=1, dim2=2
    )


@torch.inference_mode()
def validate(
    model: torch.nn.Module, val: Mixtures, device: torch.device, batch: int = 32
) -> dict[str, float]:
    """Mean SI-SNR, SI-SNRi (dB) under the best permutation, on full-length mixtures."""
    model.eval()
    sisnr, sisnri = [], []
    for i in range(0, len(val.mixtures), batch):
        x = torch.from_numpy(val.mixtures[i : i + batch]).to(device)  # B, L
        s = torch.from_numpy(val.sources[i : i + batch]).to(device)  # B, C, L
        est = model(x).float()
        best, _ = pit_si_snr(est, s)
        base_mean = input_si_snr(x, s).mean(-1)  # B
        sisnr.append(best.cpu())
        sisnri.append((best - base_mean).cpu())
    model.train()
    return {
        "val_si_snr": float(torch.cat(sisnr).mean()),
        "val_si_snri": float(torch.cat(sisnri).mean()),
    }


@dataclass
class Running:
    """Moving averages of the training loss and SI-SNRi, for the progress bar and the epoch's
    log record; each epoch starts its own."""

    loss: float = 0.0
    si_snri: float = 0.0

    def update(
        self, first: bool, x: torch.Tensor, s: torch.Tensor, loss: torch.Tensor, best: torch.Tensor
    ) -> None:
        """Fold in one step's ``loss`` and per-mixture ``best`` SI-SNR; ``first`` restarts."""
        base = input_si_snr(x, s).mean()
        now_loss, now_imp = float(loss.detach()), float(best.detach().mean() - base)
        self.loss = now_loss if first else 0.9 * self.loss + 0.1 * now_loss
        self.si_snri = now_imp if first else 0.9 * self.si_snri + 0.1 * now_imp
