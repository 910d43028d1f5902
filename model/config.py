"""Typed, frozen RSSNet hyper-parameters and the named presets."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class RSSNetConfig:
    """Every RSSNet hyper-parameter.  Field names are stored in checkpoints.

    ``n_filters`` (N) is the width between modules; ``tda_channels`` (D) the width inside a
    TDA module; ``ffn_hidden`` the attention FFN's hidden width (paper: 1024 = 2·D).
    """

    n_components: int = 2  # C
    n_filters: int = 256  # N
    tda_channels: int = 512  # D
    depth: int = 3  # S: number of scales (S-1 halvings)
    n_heads: int = 8
    ffn_hidden: int = 1024
    n_iters: int = 6  # one shared RSSNet block applied n_iters times (eq. 5)
    chunk: int = 44  # K (the paper's ≈45 made even so 50% hop is exact)
    dropout: float = 0.1
    enc_kernel: int = 3
    # Encoder hop (Conv-TasNet/TDANet style): the separator runs on ceil(L / enc_stride)
    # frames instead of L points, so each step costs several times less.  1 is the paper's.
    enc_stride: int = 1
    branch_conv: bool = True  # depth-wise 1×1 conv path p1 beside each TDA
    mask_act: str = "relu"  # relu | none, after the mask net's 1×1 conv
    max_seq: int = 256  # length of the sinusoidal position table

    def __post_init__(self) -> None:
        problems: list[str] = []
        step = 2 ** (self.depth - 1)
        if self.n_components < 1:
            problems.append(f"n_components must be >= 1, got {self.n_components!r}")
        if self.chunk % 2 or (self.chunk % step):
            problems.append(
                f"chunk (K) must be even and divisible by 2**(depth-1)={step}, got {self.chunk!r}"
            )
        if self.tda_channels % self.n_heads:
            problems.append(
                f"tda_channels {self.tda_channels!r} not divisible by n_heads {self.n_heads!r}"
            )
        if self.mask_act not in {"relu", "none"}:
            problems.append(f"mask_act must be 'relu' or 'none', got {self.mask_act!r}")
        if self.enc_stride < 1 or self.enc_kernel < self.enc_stride:
            # A kernel shorter than the hop would leave points no frame sees.
            problems.append(
                f"need 1 <= enc_stride <= enc_kernel, got enc_stride {self.enc_stride!r}, "
                f"enc_kernel {self.enc_kernel!r}"
            )
        if self.depth < 1 or self.n_iters < 1:
            problems.append("depth and n_iters must be >= 1")
        if problems:
            raise ValueError("invalid RSSNetConfig: " + "; ".join(problems))

    @property
    def hop(self) -> int:
        return self.chunk // 2

    def frames(self, length: int) -> int:
        """How many encoder frames the separator sees for an input of ``length`` points."""
        return math.ceil(length / self.enc_stride)

    def n_chunks(self, length: int) -> int:
        """T for an input of ``length`` points: enough 50%-overlapping chunks to cover it with
        one hop of padding at each end, rounded up so T halves exactly (depth-1) times."""
        step = 2 ** (self.depth - 1)
        t = math.ceil((length + 2 * self.hop) / self.hop) - 1
        return math.ceil(t / step) * step

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RSSNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown RSSNetConfig field(s): {', '.join(unknown)}")
        return cls(**data)


PRESETS: dict[str, RSSNetConfig] = {
    # The paper's configuration (IJCNN 2026, Sec. IV): ~4.98M parameters with one shared block.
    "paper": RSSNetConfig(),
    # Tuned for a 2-core CPU: measured accuracy per CPU-hour (docs/model.md).
    "default": RSSNetConfig(
        n_filters=64, tda_channels=128, ffn_hidden=256, n_heads=4, n_iters=3, chunk=44
    ),
    # For tests: trains in seconds.
    "tiny": RSSNetConfig(
        n_filters=16,
        tda_channels=32,
        ffn_hidden=64,
        n_heads=2,
        n_iters=1,
        chunk=16,
        depth=2,
        dropout=0.0,
    ),
}


def preset(name: str, **overrides: Any) -> RSSNetConfig:
    """A named preset with optional field overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)
