"""Architecture study driver (docs/model.md "Accuracy per CPU-hour by architecture").

    python bench/arch_study.py train CONFIG.toml ... [--after FILE]
    python bench/arch_study.py latency CONFIG.toml ... [--rounds 5]

``train`` runs the configs one after another in one process, reading the RRUFF library once
(on a busy 2-core machine reading it takes minutes; every config must share its [data]).
A config whose ``summary.json`` exists is skipped, so the driver can be restarted.
``--after FILE`` waits for FILE (e.g. the control run's summary.json) before training, so
the library is read while another run finishes, but two runs never train at once.
Each run's wall and CPU minutes go to ``OUT/study.json`` beside the training log.

``latency``: inference ms per spectrum (batch 1 and 8, one thread, median) of each config's
``last.pt``, measured in interleaved rounds so that all see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from rssnet.model.checkpoint import load_checkpoint
from rssnet.model.rssnet import count_parameters
from rssnet.training.config import TrainConfig, load_train_config
from rssnet.training.train import prepare_data, run


def train(configs: list[TrainConfig], after: Path | None, poll_s: float = 10.0) -> None:
    if len({c.data for c in configs}) != 1:
        raise SystemExit("arch_study: the configs must share one [data] section")
    data = prepare_data(configs[0])
    while after is not None and not after.exists():
        time.sleep(poll_s)  # another process's run; no event to wait on
    for cfg in configs:
        out = Path(cfg.train.out)
        if (out / "summary.json").exists():
            print(f"{out}: done before, skipped", flush=True)
            continue
        wall0, cpu0 = time.monotonic(), time.process_time()
        summary = run(cfg, data=data)
        record = {
            "wall_minutes": (time.monotonic() - wall0) / 60,
            "cpu_minutes": (time.process_time() - cpu0) / 60,
            **summary,
        }
        (out / "study.json").write_text(json.dumps(record, indent=2))
        print(f"{out}: {json.dumps(record)}", flush=True)


def latency(configs: list[TrainConfig], rounds: int, batches: tuple[int, ...] = (1, 8)) -> None:
    torch.set_num_threads(1)  # as the study trained; more threads only contend here
    models = {
        Path(c.train.out).name: load_checkpoint(Path(c.train.out) / "last.pt") for c in configs
    }
    rng = np.random.default_rng(0)
    times: dict[tuple[str, int], list[float]] = {(n, b): [] for n in models for b in batches}
    with torch.inference_mode():
        for _ in range(rounds):
            for name, ckpt in models.items():
                model = ckpt.model.eval()
                for b in batches:
                    x = torch.from_numpy(rng.random((b, ckpt.axis.size), dtype=np.float32))
                    model(x)  # warm the allocator for this shape
                    t0 = time.perf_counter()
                    model(x)
                    times[(name, b)].append((time.perf_counter() - t0) * 1000 / b)
    for name, ckpt in models.items():
        row = {f"ms_b{b}": round(float(np.median(times[(name, b)])), 2) for b in batches}
        print(json.dumps({"run": name, "params": count_parameters(ckpt.model), **row}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("train", "latency"))
    ap.add_argument("configs", nargs="+", type=Path)
    ap.add_argument("--after", type=Path, help="train only once this file exists")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-minutes", type=float, help="override each config's budget")
    ap.add_argument("--out-root", type=Path, help="write each run to OUT_ROOT/<its out name>")
    args = ap.parse_args()
    configs = [load_train_config(p) for p in args.configs]
    if args.max_minutes or args.out_root:
        # A second budget point of the same configs: runs/<root>/<config name>.
        configs = [
            c.model_copy(
                update={
                    "train": c.train.model_copy(
                        update={
                            "max_minutes": args.max_minutes or c.train.max_minutes,
                            "out": str(args.out_root / Path(c.train.out).name)
                            if args.out_root
                            else c.train.out,
                        }
                    )
                }
            )
            for c in configs
        ]
    if args.mode == "train":
        train(configs, args.after)
    else:
        latency(configs, args.rounds)


if __name__ == "__main__":
    main()
