"""TDANet's top-down attention (TDA) module, as RSSNet uses it along one axis.

Structure (Li et al., ICLR 2023, resolved against RSSNet's text; see docs/model.md):
1×1 projection N→D; S scales by stride-2 depth-wise convs; the scales are pooled to the
coarsest one and summed; global attention (multi-head self-attention + FFN) there;
each scale is modulated by the global features through a sigmoid gate (local attention);
a top-down pass merges scales coarsest-first; 1×1 projection D→N.

Export notes: pooling uses fixed integer kernels and upsampling uses ``interpolate`` with
integer scale factors, so ONNX sees AveragePool/Resize, not data-dependent gathers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class DepthwiseConv1d(nn.Conv1d):
    """A depth-wise Conv1d (same parameters and results) that trains fast on CPU.

    oneDNN's depth-wise convolution backward is ~15× slower than its forward on CPU and
    dominated training time; as a sum of shifted products the same operation is a handful
    of element-wise ops with cheap gradients.  Inference and export use the plain
    convolution, so ONNX sees a standard Conv node.
    """

    def __init__(self, channels: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            channels, channels, kernel, stride, padding=(kernel - 1) // 2, groups=channels
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and x.device.type == "cpu"):
            return super().forward(x)
        k, t = self.kernel_size[0], x.shape[-1]
        p = (k - 1) // 2  # as passed to the parent; self.padding is typed str | tuple
        xp = F.pad(x, (p, p)) if p else x  # B, C, T + 2p
        w = self.weight[:, 0, :]  # C, k
        out = xp[..., 0:t] * w[:, 0:1]
        for i in range(1, k):
            out = out + xp[..., i : i + t] * w[:, i : i + 1]  # B, C, T
        if self.bias is not None:
            out = out + self.bias[:, None]
        s = self.stride[0]
        return out[..., ::s] if s > 1 else out


class ConvNorm(nn.Module):
    """Conv1d + global layer norm (GroupNorm with one group), optional PReLU."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: bool = False,
    ) -> None:
        super().__init__()
        self.conv: nn.Conv1d
        if groups == c_in == c_out and groups > 1:
            self.conv = DepthwiseConv1d(c_in, kernel, stride)
        else:
            self.conv = nn.Conv1d(
                c_in, c_out, kernel, stride, padding=(kernel - 1) // 2, groups=groups
            )
        self.norm = nn.GroupNorm(1, c_out, eps=1e-8)
        self.act: nn.Module = nn.PReLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))  # B, c_out, T'


def _positions(length: int, dim: int) -> torch.Tensor:
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return table  # max_len, D


class GlobalAttention(nn.Module):
    """Multi-head self-attention + convolutional FFN at the coarsest scale."""

    pos: torch.Tensor  # registered buffer (D-wide sinusoidal table)

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float, max_seq: int) -> None:
        super().__init__()
        # Non-persistent and short: TDANet's 10000×512 persistent table bloats checkpoints.
        self.register_buffer("pos", _positions(max_seq, dim), persistent=False)
        self.norm = nn.LayerNorm(dim)
        # batch_first=True: without it attention runs across the batch (TDANet issue #3)
        # and a spectrum's output would depend on its neighbours in the batch.
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.ffn = nn.Sequential(
            ConvNorm(dim, hidden, 1),
            ConvNorm(hidden, hidden, 5, groups=hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            ConvNorm(hidden, dim, 1),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[-1]
        pos = self.pos
        if t > pos.shape[0]:
            raise ValueError(f"sequence of {t} exceeds max_seq {pos.shape[0]}")
        seq = x.transpose(1, 2)  # B, T, D
        q = self.norm(seq) + pos[:t]
        att, _ = self.attn(q, q, q, need_weights=False)
        seq = seq + self.drop(att)
        x = seq.transpose(1, 2)  # B, D, T
        return x + self.ffn(x)


class Gate(nn.Module):
    """Local attention: modulate fine features by coarse ones (sigmoid gate + injection)."""

    def __init__(self, dim: int, kernel: int = 1) -> None:
        super().__init__()
        self.local = ConvNorm(dim, dim, kernel, groups=dim)
        self.gate = ConvNorm(dim, dim, kernel, groups=dim)
        self.inject = ConvNorm(dim, dim, kernel, groups=dim)

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor, factor: int) -> torch.Tensor:
        g = torch.sigmoid(self.gate(coarse))  # B, D, T/f
        c = self.inject(coarse)
        if factor > 1:
            g = F.interpolate(g, scale_factor=float(factor), mode="nearest")  # B, D, T
            c = F.interpolate(c, scale_factor=float(factor), mode="nearest")
        return self.local(fine) * g + c


class TDA(nn.Module):
    """Top-down attention along the last axis of a (B, N, T) tensor; T % 2**(S-1) == 0.

    ``residual=False`` (RSSNet's default) leaves the skip to the block's parallel branch.
    """

    def __init__(
        self,
        channels: int,
        dim: int,
        depth: int,
        heads: int,
        hidden: int,
        dropout: float,
        max_seq: int,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.residual = residual
        self.proj_in = ConvNorm(channels, dim, 1, act=True)
        self.scales = nn.ModuleList(
            [ConvNorm(dim, dim, 5, stride=1 if i == 0 else 2, groups=dim) for i in range(depth)]
        )
        self.attention = GlobalAttention(dim, heads, hidden, dropout, max_seq)
        self.fuse = nn.ModuleList([Gate(dim) for _ in range(depth)])
        self.merge = nn.ModuleList([Gate(dim, 5) for _ in range(depth - 1)])
        self.proj_out = nn.Conv1d(dim, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: B, N, T
        feats = [self.scales[0](self.proj_in(x))]  # B, D, T
        for conv in self.scales[1:]:
            feats.append(conv(feats[-1]))  # B, D, T / 2**i
        last = self.depth - 1
        pooled = feats[last]
        for i in range(last):
            pooled = pooled + F.avg_pool1d(feats[i], kernel_size=2 ** (last - i))
        glob = self.attention(pooled)  # B, D, T / 2**(S-1)
        fused = [self.fuse[i](feats[i], glob, 2 ** (last - i)) for i in range(self.depth)]
        out = fused[last]
        for i in range(last - 1, -1, -1):  # coarsest enters first (the fixed i+1 indexing)
            out = self.merge[i](fused[i], out, 2)
        out = self.proj_out(out)  # B, N, T
        return out + x if self.residual else out
