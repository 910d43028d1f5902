"""Training throughput per model config and crop length (samples/s on this machine).

usage: python bench/train_speed.py [--steps 15] [--batch 8] preset[:crop] ...
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rssnet.model.config import preset
from rssnet.model.rssnet import RSSNet, count_parameters
from rssnet.training.loss import pit_si_snr


def measure(name: str, crop: int, steps: int, batch: int, overrides: dict[str, int]) -> None:
    cfg = preset(name, **overrides)
    model = RSSNet(cfg)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    length = crop or 1024
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((batch, length)).astype(np.float32))
    s = torch.from_numpy(rng.standard_normal((batch, cfg.n_components, length)).astype(np.float32))
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        best, _ = pit_si_snr(model(x), s)
        loss = -best.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:  # first steps warm allocators
            times.append(time.perf_counter() - t0)
    per = float(np.median(times))
    print(
        f"{name:8s} {overrides!s:30s} crop={length:5d} params={count_parameters(model):8d} "
        f"step={per * 1e3:7.1f} ms  samples/s={batch / per:6.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("configs", nargs="+")
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for spec in args.configs:
        parts = spec.split(":")
        overrides = {}
        for kv in parts[2:]:
            k, v = kv.split("=")
            overrides[k] = int(v)
        measure(
            parts[0], int(parts[1] or 0) if len(parts) > 1 else 0, args.steps, args.batch, overrides
        )


if __name__ == "__main__":
    main()
