"""Losses named by shape (as asteroid does): pairwise SI-SNR and its PIT wrapper."""

from __future__ import annotations

import itertools

import torch


def pairwise_si_snr(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """SI-SNR in dB between every estimate and every reference.

    est, ref: (B, C, L) → (B, C_est, C_ref).  Zero-mean per signal, as in the paper.
    """
    if est.shape != ref.shape or est.dim() != 3:
        raise ValueError(
            f"expected equal (B, C, L) shapes, got {tuple(est.shape)} and {tuple(ref.shape)}"
        )
    est = est - est.mean(dim=-1, keepdim=True)
    ref = ref - ref.mean(dim=-1, keepdim=True)
    e = est.unsqueeze(2)  # B, C, 1, L
    r = ref.unsqueeze(1)  # B, 1, C, L
    dot = (e * r).sum(-1, keepdim=True)  # B, C, C, 1
    target = dot * r / (r.pow(2).sum(-1, keepdim=True) + eps)  # B, C, C, L
    noise = e - target
    ratio = target.pow(2).sum(-1) / (noise.pow(2).sum(-1) + eps)  # B, C, C
    return 10 * torch.log10(ratio + eps)


def pit_si_snr(est: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Best permutation per sample by mean SI-SNR.

    Returns (si_snr (B,) mean over sources under the best permutation, perm (B, C) with
    est[b, perm[b, j]] matched to ref[b, j]).  Loss = −si_snr.mean().
    """
    pw = pairwise_si_snr(est, ref)  # B, C_est, C_ref
    c = est.shape[1]
    perms = torch.tensor(list(itertools.permutations(range(c))), device=est.device)  # P, C
    cols = torch.arange(c, device=est.device)
    scores = pw[:, perms, cols].mean(-1)  # B, P
    best, which = scores.max(dim=1)
    return best, perms[which]


def reorder(est: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """est (B, C, L) reordered so est[:, j] matches reference j."""
    return torch.gather(est, 1, perm.unsqueeze(-1).expand(-1, -1, est.shape[-1]))
