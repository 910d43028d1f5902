"""``rssnet train``: SI-SNR + PIT training of RSSNet on fresh synthetic mixtures.

Phases, top to bottom: set up (device, DDP, library, split, fixed validation set) →
model and optimizer (resume if a ``last.pt`` exists) → epochs of fresh batches with a
validation and checkpoint after each → stop on time, steps or patience.
Multi-GPU: ``torchrun --nproc_per_node=K -m rssnet.training.train --config FILE``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from rssnet.errors import ConfigError, ModelFileError, RssnetError
from rssnet.model.checkpoint import read_payload, save_checkpoint
from rssnet.model.config import preset
from rssnet.model.rssnet import RSSNet, count_parameters
from rssnet.training.config import TrainConfig, load_train_config
from rssnet.training.data import MixtureStream
from rssnet.training.library import (
    SpectralLibrary,
    library_report,
    load_library,
    split_library,
)
from rssnet.training.loss import pairwise_si_snr, pit_si_snr
from rssnet.training.synthesis import Mixtures, synthesize

log = structlog.get_logger(__name__)


def lr_at(progress: float, step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine from ``lr`` to ``min_lr`` over the run's progress (0..1:
    the larger of the step and time fractions, so time-limited runs still anneal)."""
    t = cfg.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    p = min(max(progress, 0.0), 1.0)
    return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1.0 + math.cos(math.pi * p))


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def pick_device(name: str, d: Dist) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and d.world > 1:
        name = f"cuda:{d.local_rank}"
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RssnetError(f"device {name!r} requested but CUDA is not available")
    return dev


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
        base = pairwise_si_snr(x.unsqueeze(1).expand_as(s).contiguous(), s)
        base_mean = torch.diagonal(base, dim1=1, dim2=2).mean(-1)  # B
        sisnr.append(best.cpu())
        sisnri.append((best - base_mean).cpu())
    model.train()
    return {
        "val_si_snr": float(torch.cat(sisnr).mean()),
        "val_si_snri": float(torch.cat(sisnri).mean()),
    }


def prepare_data(cfg: TrainConfig) -> tuple[SpectralLibrary, dict[str, np.ndarray]]:
    d = cfg.data
    axis = np.linspace(d.axis_min, d.axis_max, d.axis_points, dtype=np.float32)
    lib = load_library(d.library, axis, progress=True)
    log.info("library.loaded", summary=library_report(lib, Path(d.library).name)[0])
    return lib, split_library(lib, by=d.split, seed=d.split_seed)


def run(
    cfg: TrainConfig,
    d: Dist | None = None,
    data: tuple[SpectralLibrary, dict[str, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Train until a stop condition; returns the final summary (also in ``summary.json``).
    ``data``: ``prepare_data(cfg)``'s result, when several runs share one library."""
    d = d or Dist()
    t = cfg.train
    out = Path(t.out)
    device = pick_device(t.device, d)
    if t.threads:
        torch.set_num_threads(t.threads)
    torch.manual_seed(t.seed + d.rank)

    # --- data: library, split, a fixed validation set --------------------------------
    lib, split = data or prepare_data(cfg)
    train_lib, val_lib = lib.subset(split["train"]), lib.subset(split["val"])
    mcfg = preset(cfg.model.preset, **cfg.model.overrides)
    val = synthesize(
        val_lib.spectra,
        val_lib.names,
        cfg.data.val_size,
        np.random.default_rng(cfg.data.val_seed),
        mcfg.n_components,
        cfg.data.snr_db,
    )

    # --- model, optimizer, resume ----------------------------------------------------
    model = RSSNet(mcfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=t.lr)
    state = {"step": 0, "seconds": 0.0, "best": -math.inf, "stale": 0, "epoch": 0, "samples": 0}
    last = out / "last.pt"
    if t.resume and last.exists():
        payload = read_payload(last)
        model.load_state_dict(payload["state_dict"])
        if "optimizer" in payload:
            opt.load_state_dict(payload["optimizer"])
        state.update(payload["meta"]["train_state"])
        log.info("train.resume", path=str(last), **state)
    elif t.init:
        payload = read_payload(Path(t.init))
        try:
            model.load_state_dict(payload["state_dict"])
        except RuntimeError as err:
            raise ModelFileError(
                f"{t.init}: [train] init is not a {cfg.model.preset} model: {err}"
            ) from err
        log.info("train.init", path=t.init)
    net: torch.nn.Module = model
    if d.world > 1:
        # With one iteration the recurrence conv never runs: DDP must not wait for its grads.
        net = DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=mcfg.n_iters < 2,
        )
    amp = device.type == "cuda"
    stream = MixtureStream(
        train_lib.spectra,
        train_lib.names,
        t.batch,
        mcfg.n_components,
        cfg.data.crop,
        cfg.data.snr_db,
        seed=t.seed * 1000 + d.rank * 100 + int(state["epoch"]),
    )
    loader = iter(
        DataLoader(stream, batch_size=None, num_workers=t.workers, persistent_workers=t.workers > 0)
    )
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        log.info(
            "train.start",
            params=count_parameters(model),
            device=str(device),
            train_spectra=len(train_lib),
            val_spectra=len(val_lib),
            world=d.world,
        )

    def meta(metrics: dict[str, float]) -> dict[str, Any]:
        return {
            "name": f"rssnet-{cfg.model.preset}",
            "preset": cfg.model.preset,
            "library_id": lib.library_id,
            "split": cfg.data.split,
            "split_seed": cfg.data.split_seed,
            "metrics": metrics,
            "train_state": dict(state),
            "device": str(device),
            "world": d.world,
            "params": count_parameters(model),
            "train_config": json.loads(cfg.model_dump_json()),
        }

    # --- epochs ----------------------------------------------------------------------
    # The budget clock: wall time, or this process's CPU time, which keeps runs comparable
    # on a machine shared with other work ("accuracy per CPU-hour", docs/model.md).
    clock = time.process_time if t.clock == "cpu" else time.monotonic
    t0 = clock() - float(state["seconds"])
    session_end = time.monotonic() + t.session_minutes * 60 if t.session_minutes else math.inf
    stop = ""
    while not stop:
        bar = tqdm(
            range(t.epoch_steps),
            desc=f"epoch {state['epoch']}",
            disable=not (d.main and t.progress),
            file=sys.stderr,
            dynamic_ncols=True,
        )
        run_loss = run_imp = 0.0
        for k in bar:
            elapsed = clock() - t0
            progress = max(
                elapsed / (t.max_minutes * 60), state["step"] / t.max_steps if t.max_steps else 0.0
            )
            if progress >= 1.0:
                stop = "budget"
                break
            if time.monotonic() >= session_end:
                stop = "session"
                break
            for g in opt.param_groups:
                g["lr"] = lr_at(progress, int(state["step"]), cfg)
            x, s = next(loader)
            x, s = x.to(device, non_blocking=True), s.to(device, non_blocking=True)  # B, L; B, C, L
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                est = net(x)  # B, C, L
            best, _ = pit_si_snr(est.float(), s)
            loss = -best.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip)
            opt.step()
            state["step"] += 1
            state["samples"] += t.batch * d.world
            # .item() is a device sync point: only every few steps on GPU.
            if k % 10 == 0 or device.type == "cpu":
                base = torch.diagonal(
                    pairwise_si_snr(x.unsqueeze(1).expand_as(s).contiguous(), s), dim1=1, dim2=2
                ).mean()
                run_loss = (
                    0.9 * run_loss + 0.1 * float(loss.detach()) if k else float(loss.detach())
                )
                run_imp = (
                    0.9 * run_imp + 0.1 * float(best.detach().mean() - base)
                    if k
                    else float(best.detach().mean() - base)
                )
                bar.set_postfix(
                    loss=f"{run_loss:.2f}",
                    si_snri=f"{run_imp:.2f}",
                    lr=f"{opt.param_groups[0]['lr']:.1e}",
                )
        bar.close()
        state["epoch"] += 1
        state["seconds"] = clock() - t0
        if d.main:
            metrics = validate(model, val, device)
            improved = metrics["val_si_snri"] > float(state["best"])
            state["stale"] = 0 if improved else int(state["stale"]) + 1
            if improved:
                state["best"] = metrics["val_si_snri"]
                save_checkpoint(out / "best.pt", model, lib.axis, meta(metrics), val.mixtures[:2])
            save_checkpoint(
                out / "last.pt",
                model,
                lib.axis,
                meta(metrics),
                val.mixtures[:2],
                optimizer_state=opt.state_dict(),
            )
            record = {
                **metrics,
                **{k: state[k] for k in ("epoch", "step", "samples", "seconds")},
                "train_loss": run_loss,
                "train_si_snri": run_imp,
            }
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            log.info("train.epoch", **record)
            if int(state["stale"]) >= t.patience:
                stop = stop or "patience"
        if t.max_steps and state["step"] >= t.max_steps:
            stop = stop or "steps"
        if d.world > 1:  # every rank must agree to stop, or the others hang in all-reduce
            flag = torch.tensor(
                [1 if stop else 0], device=device if device.type == "cuda" else "cpu"
            )
            dist.broadcast(flag, src=0)
            stop = stop or ("rank0" if int(flag) else "")
    summary = {"stop": stop, "best_val_si_snri": state["best"], **state}
    if d.main:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        log.info("train.done", **summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rssnet train",
        description="Train RSSNet on fresh synthetic mixtures (SI-SNR loss, "
        "permutation-invariant).",
    )
    parser.add_argument("--config", required=True, help="training config (TOML)")
    parser.add_argument("--out", help="override [train] out")
    parser.add_argument("--max-minutes", type=float, help="override [train] max_minutes")
    parser.add_argument("--session-minutes", type=float, help="override [train] session_minutes")
    args = parser.parse_args(argv)
    try:
        cfg = load_train_config(args.config)
    except ConfigError as err:
        sys.stderr.write(f"{err}\n")
        return 78
    upd: dict[str, Any] = {}
    if args.out:
        upd["out"] = str(Path(args.out).resolve())
    if args.max_minutes:
        upd["max_minutes"] = args.max_minutes
    if args.session_minutes:
        upd["session_minutes"] = args.session_minutes
    if upd:
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update=upd)})
    # torchrun passes the process layout in the environment; read it here, at the edge.
    world = int(os.environ.get("WORLD_SIZE", "1"))
    d = Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    if world > 1:
        backend = "nccl" if torch.cuda.is_available() and cfg.train.device != "cpu" else "gloo"
        dist.init_process_group(backend)
    try:
        run(cfg, d)
    except RssnetError as err:
        sys.stderr.write(f"rssnet train: {err}\n")
        return 1
    finally:
        if world > 1:
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
