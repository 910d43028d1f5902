"""RSSNet (Long et al., IJCNN 2026): encoder → dual-path TDA separator → masks → decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rssnet.model.config import RSSNetConfig
from rssnet.model.tda import TDA


class ChannelScale(nn.Module):
    """A depth-wise 1×1 convolution over (B, N, K, T) written as a per-channel affine map:
    identical maths, but element-wise (fast backward on CPU, Mul+Add in ONNX)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, 1, 1).uniform_(-1.0, 1.0))
        self.bias = nn.Parameter(torch.empty(channels, 1, 1).uniform_(-1.0, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + self.bias  # B, N, K, T


class RSSNetBlock(nn.Module):
    """Intra-TDA (within a chunk, along K) ∥ depth-wise 1×1 path, then Inter-TDA (across
    chunks, along T) ∥ depth-wise 1×1 path.  The paper's two branches replace TDA's residual."""

    def __init__(self, cfg: RSSNetConfig) -> None:
        super().__init__()
        n = cfg.n_filters
        args = (n, cfg.tda_channels, cfg.depth, cfg.n_heads, cfg.ffn_hidden, cfg.dropout)
        self.intra = TDA(*args, max_seq=cfg.chunk, residual=not cfg.branch_conv)
        self.inter = TDA(*args, max_seq=cfg.max_seq, residual=not cfg.branch_conv)
        self.branch = cfg.branch_conv
        self.p_intra = ChannelScale(n)  # unused when branch_conv is False
        self.p_inter = ChannelScale(n)
        self.norm_intra = nn.GroupNorm(1, n, eps=1e-8)
        self.norm_inter = nn.GroupNorm(1, n, eps=1e-8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, k, t = x.shape  # B, N, K, T
        intra = x.permute(0, 3, 1, 2).reshape(b * t, n, k)  # B·T, N, K
        intra = self.intra(intra).reshape(b, t, n, k).permute(0, 2, 3, 1)  # B, N, K, T
        x = self.norm_intra(intra + self.p_intra(x) if self.branch else intra)
        inter = x.permute(0, 2, 1, 3).reshape(b * k, n, t)  # B·K, N, T
        inter = self.inter(inter).reshape(b, k, n, t).permute(0, 2, 1, 3)  # B, N, K, T
        return self.norm_inter(inter + self.p_inter(x) if self.branch else inter)


class RSSNet(nn.Module):
    """(B, L) mixtures → (B, C, L) components.

    Scale-equivariant: the input is divided by its RMS and the outputs multiplied back, so
    counts, normalized or raw intensities all work and outputs are in the input's units.
    """

    def __init__(self, cfg: RSSNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n = cfg.n_filters
        k, stride = cfg.enc_kernel, cfg.enc_stride
        # The paper's encoder (odd kernel, stride 1) pads inside the convs and keeps exactly
        # the layers and graph the shipped checkpoints were made with; any other shape pads
        # explicitly (see _pads) and crops the decoder's output back to L.
        self._same = stride == 1 and k % 2 == 1
        pad = k // 2 if self._same else 0
        self.encoder = nn.Conv1d(1, n, k, stride=stride, padding=pad, bias=False)
        self.enc_norm = nn.GroupNorm(1, n, eps=1e-8)
        self.enc_act = nn.PReLU()
        self.block = RSSNetBlock(cfg)  # shared, applied n_iters times (see docs/model.md)
        self.recur = nn.Sequential(ChannelScale(n), nn.PReLU())
        self.mask_act = nn.PReLU()
        self.mask_conv = nn.Conv1d(n, cfg.n_components * n, 1)
        self.decoder = nn.ConvTranspose1d(n, 1, k, stride=stride, padding=pad, bias=False)

    def _pads(self, length: int) -> tuple[int, int]:
        """Zero padding (left, right) so that ceil(L / stride) frames of the strided encoder
        cover every point: frame i sees padded points [i·stride, i·stride + kernel)."""
        cfg = self.cfg
        left = (cfg.enc_kernel - cfg.enc_stride) // 2  # centres each frame's hop in its window
        right = (cfg.frames(length) - 1) * cfg.enc_stride + cfg.enc_kernel - length - left
        return left, right

    def _chunk(self, h: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(B, N, L) → (B, N, K, T) with 50% overlap, via two shifted reshapes (no Unfold)."""
        cfg = self.cfg
        length = h.shape[-1]
        t = cfg.n_chunks(length)
        total = cfg.hop * (t + 1)
        h = F.pad(h, (cfg.hop, total - length - cfg.hop))  # B, N, hop·(T+1)
        blocks = h.reshape(h.shape[0], h.shape[1], t + 1, cfg.hop)  # B, N, T+1, hop
        chunks = torch.cat([blocks[:, :, :-1], blocks[:, :, 1:]], dim=-1)  # B, N, T, K
        return chunks.transpose(2, 3), length  # B, N, K, T

    def _overlap_add(self, x: torch.Tensor, length: int) -> torch.Tensor:
        """(B, N, K, T) → (B, N, L): inverse of ``_chunk`` by padding halves and adding."""
        hop = self.cfg.hop
        x = x.transpose(2, 3)  # B, N, T, K
        first = F.pad(x[..., :hop], (0, 0, 0, 1))  # B, N, T+1, hop (chunk t → block t)
        second = F.pad(x[..., hop:], (0, 0, 1, 0))  # B, N, T+1, hop (chunk t → block t+1)
        y = (first + second).flatten(2)  # B, N, hop·(T+1)
        return y[..., hop : hop + length]

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        if mix.dim() != 2:
            raise ValueError(f"expected (batch, length) mixtures, got shape {tuple(mix.shape)}")
        scale = mix.pow(2).mean(dim=-1, keepdim=True).add(1e-12).sqrt()  # B, 1
        x = (mix / scale).unsqueeze(1)  # B, 1, L
        points = mix.shape[-1]  # L
        left = 0
        if not self._same:
            left, right = self._pads(points)
            x = F.pad(x, (left, right))  # B, 1, (F-1)·stride + kernel
        h = self.enc_act(self.enc_norm(self.encoder(x)))  # B, N, F  (F = L when stride 1)
        chunks, length = self._chunk(h)  # B, N, K, T; length = F
        r = chunks
        for i in range(self.cfg.n_iters):
            r = self.block(r if i == 0 else self.recur(r + chunks))  # B, N, K, T
        y = self._overlap_add(r, length)  # B, N, F
        masks = self.mask_conv(self.mask_act(y))  # B, C·N, F
        if self.cfg.mask_act == "relu":
            masks = F.relu(masks)
        masks = masks.reshape(masks.shape[0], self.cfg.n_components, -1, length)  # B, C, N, F
        masked = (masks * h.unsqueeze(1)).flatten(0, 1)  # B·C, N, F
        out = self.decoder(masked)  # B·C, 1, L  ((F-1)·stride + kernel before the crop)
        if not self._same:
            out = out[..., left : left + points]  # B·C, 1, L
        out = out.reshape(mix.shape[0], self.cfg.n_components, points)
        out = out * scale.unsqueeze(1)  # B, C, L
        # SI-SNR cannot see a component's sign, so training leaves it arbitrary; Raman
        # spectra are non-negative, so each component is turned to correlate positively
        # with the mixture (no gradient, no effect on the loss; Where/Neg in ONNX).
        corr = (out * mix.unsqueeze(1)).sum(dim=-1, keepdim=True)  # B, C, 1
        return torch.where(corr < 0, -out, out)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
