"""``rssnet train``: SI-SNR + PIT training of RSSNet on fresh synthetic mixtures.

Read top to bottom, as the run goes: ``Trainer.__init__`` sets up (device, library, split,
fixed validation set, model and optimizer, resume from ``last.pt``, DDP, the batch stream);
``Trainer.fit`` runs epochs of ``train_step``s, each epoch followed by a validation, the
checkpoints and a log record, and stops on time, steps or patience.  The schedule, budget
and metrics it uses live in ``rssnet.training.progress``.
Multi-GPU: ``torchrun --nproc_per_node=K -m rssnet.training.train --config FILE``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterator
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
from rssnet.formats.library import (
    SpectralLibrary,
    library_report,
    load_library,
    split_library,
)
from rssnet.model.checkpoint import read_payload, save_checkpoint
from rssnet.model.config import preset
from rssnet.model.rssnet import RSSNet, count_parameters
from rssnet.training.config import TrainConfig, load_train_config
from rssnet.training.data import MixtureStream
from rssnet.training.loss import pit_si_snr
from rssnet.training.progress import Budget, Running, lr_at, validate
from rssnet.training.synthesis import synthesize

log = structlog.get_logger(__name__)


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


def prepare_data(cfg: TrainConfig) -> tuple[SpectralLibrary, dict[str, np.ndarray]]:
    d = cfg.data
    axis = np.linspace(d.axis_min, d.axis_max, d.axis_points, dtype=np.float32)
    lib = load_library(d.library, axis, progress=True)
    log.info("library.loaded", summary=library_report(lib, Path(d.library).name)[0])
    return lib, split_library(lib, by=d.split, seed=d.split_seed)


class Trainer:
    """One run: ``__init__`` sets it up (data, model, optimizer, resume, DDP, the batch
    stream), ``fit`` is the loop: epochs of steps, each followed by validation, checkpoints
    and a log record, until a stop condition."""

    def __init__(
        self, cfg: TrainConfig, d: Dist, data: tuple[SpectralLibrary, dict[str, np.ndarray]] | None
    ) -> None:
        t = self.t = cfg.train
        self.cfg, self.d = cfg, d
        self.out = Path(t.out)
        self.device = pick_device(t.device, d)
        if t.threads:
            torch.set_num_threads(t.threads)
        torch.manual_seed(t.seed + d.rank)

        # The validation set is synthesized once, from the split's validation spectra, so
        # that every epoch (and every resume) is scored on the same mixtures.
        self.lib, split = data or prepare_data(cfg)
        train_lib, val_lib = self.lib.subset(split["train"]), self.lib.subset(split["val"])
        mcfg = preset(cfg.model.preset, **cfg.model.overrides)
        self.val = synthesize(
            val_lib.spectra,
            val_lib.names,
            cfg.data.val_size,
            np.random.default_rng(cfg.data.val_seed),
            mcfg.n_components,
            cfg.data.snr_db,
        )

        self.model = RSSNet(mcfg).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=t.lr)
        self.state = self._resume_or_init()
        self.net = self._distributed(mcfg.n_iters)
        self.amp = self.device.type == "cuda"
        # Built after resuming: the stream's seed includes the epoch reached.
        self.batches = self._batch_stream(train_lib, mcfg.n_components)
        if d.main:
            self.out.mkdir(parents=True, exist_ok=True)
            log.info(
                "train.start",
                params=count_parameters(self.model),
                device=str(self.device),
                train_spectra=len(train_lib),
                val_spectra=len(val_lib),
                world=d.world,
            )

    # --- set-up ------------------------------------------------------------------------

    def _resume_or_init(self) -> dict[str, float]:
        """The run's counters: those of ``last.pt`` (with its weights and optimizer) when
        resuming, else fresh ones, the model starting from ``init``'s weights if given."""
        t = self.t
        state = {"step": 0, "seconds": 0.0, "best": -math.inf, "stale": 0, "epoch": 0, "samples": 0}
        last = self.out / "last.pt"
        if t.resume and last.exists():
            payload = read_payload(last)
            self.model.load_state_dict(payload["state_dict"])
            if "optimizer" in payload:
                self.opt.load_state_dict(payload["optimizer"])
            state.update(payload["meta"]["train_state"])
            log.info("train.resume", path=str(last), **state)
        elif t.init:
            payload = read_payload(Path(t.init))
            try:
                self.model.load_state_dict(payload["state_dict"])
            except RuntimeError as err:
                raise ModelFileError(
                    f"{t.init}: [train] init is not a {self.cfg.model.preset} model: {err}"
                ) from err
            log.info("train.init", path=t.init)
        return state

    def _distributed(self, n_iters: int) -> torch.nn.Module:
        """The module the steps run through: the model itself, or its DDP wrapper."""
        if self.d.world <= 1:
            return self.model
        # With one iteration the recurrence conv never runs: DDP must not wait for its grads.
        return DistributedDataParallel(
            self.model,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=n_iters < 2,
        )

    def _batch_stream(
        self, train_lib: SpectralLibrary, n_components: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Fresh training mixtures, synthesized in ``workers`` processes.  The seed differs
        per rank (the ranks train on different mixtures) and per resume (a resumed run does
        not replay the mixtures it started with)."""
        t = self.t
        stream = MixtureStream(
            train_lib.spectra,
            train_lib.names,
            t.batch,
            n_components,
            self.cfg.data.crop,
            self.cfg.data.snr_db,
            seed=t.seed * 1000 + self.d.rank * 100 + int(self.state["epoch"]),
        )
        return iter(
            DataLoader(
                stream, batch_size=None, num_workers=t.workers, persistent_workers=t.workers > 0
            )
        )

    # --- one step, one epoch -----------------------------------------------------------

    def train_step(self, x: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on mixtures ``x`` (B, L) and their sources ``s`` (B, C, L);
        returns the loss and each mixture's SI-SNR under its best permutation (B)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            est = self.net(x)  # B, C, L
        best, _ = pit_si_snr(est.float(), s)
        loss = -best.mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.t.clip)
        self.opt.step()
        self.state["step"] += 1
        self.state["samples"] += self.t.batch * self.d.world
        return loss, best

    def train_epoch(self, budget: Budget) -> tuple[str, Running]:
        """Up to ``epoch_steps`` steps, under a progress bar (rank 0's only); returns why the
        budget ended it early ("" when it ran them all) and its running averages."""
        bar = tqdm(
            range(self.t.epoch_steps),
            desc=f"epoch {self.state['epoch']}",
            disable=not (self.d.main and self.t.progress),
            file=sys.stderr,
            dynamic_ncols=True,
        )
        running = Running()
        stop = ""
        for k in bar:
            progress = budget.progress(self.state["step"])
            stop = budget.spent(progress)
            if stop:
                break
            for g in self.opt.param_groups:
                g["lr"] = lr_at(progress, int(self.state["step"]), self.cfg)
            x, s = next(self.batches)
            x, s = x.to(self.device, non_blocking=True), s.to(self.device, non_blocking=True)
            loss, best = self.train_step(x, s)
            # .item() is a device sync point: only every few steps on GPU.
            if k % 10 == 0 or self.device.type == "cpu":
                running.update(k == 0, x, s, loss, best)
                bar.set_postfix(
                    loss=f"{running.loss:.2f}",
                    si_snri=f"{running.si_snri:.2f}",
                    lr=f"{self.opt.param_groups[0]['lr']:.1e}",
                )
        bar.close()
        return stop, running

    # --- after each epoch: validation, checkpoints, log (rank 0) -----------------------

    def track_best(self, metrics: dict[str, float]) -> bool:
        """Count epochs without a validation gain (for ``patience``); True on a new best."""
        improved = metrics["val_si_snri"] > float(self.state["best"])
        self.state["stale"] = 0 if improved else int(self.state["stale"]) + 1
        if improved:
            self.state["best"] = metrics["val_si_snri"]
        return improved

    def save_checkpoints(self, metrics: dict[str, float], improved: bool) -> None:
        """``best.pt`` on a new best; ``last.pt`` always, with the optimizer state that resuming
        needs."""
        sample = self.val.mixtures[:2]
        if improved:
            save_checkpoint(
                self.out / "best.pt", self.model, self.lib.axis, self.meta(metrics), sample
            )
        save_checkpoint(
            self.out / "last.pt",
            self.model,
            self.lib.axis,
            self.meta(metrics),
            sample,
            optimizer_state=self.opt.state_dict(),
        )

    def meta(self, metrics: dict[str, float]) -> dict[str, Any]:
        """A checkpoint's metadata; ``train_state`` is what a resume restores."""
        cfg = self.cfg
        return {
            "name": f"rssnet-{cfg.model.preset}",
            "preset": cfg.model.preset,
            "library_id": self.lib.library_id,
            "split": cfg.data.split,
            "split_seed": cfg.data.split_seed,
            "metrics": metrics,
            "train_state": dict(self.state),
            "device": str(self.device),
            "world": self.d.world,
            "params": count_parameters(self.model),
            "train_config": json.loads(cfg.model_dump_json()),
        }

    def log_epoch(self, metrics: dict[str, float], running: Running) -> None:
        """One record per epoch: a line of ``log.jsonl`` and a ``train.epoch`` event."""
        record = {
            **metrics,
            **{k: self.state[k] for k in ("epoch", "step", "samples", "seconds")},
            "train_loss": running.loss,
            "train_si_snri": running.si_snri,
        }
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        log.info("train.epoch", **record)

    def agree_to_stop(self, stop: str) -> str:
        """Only rank 0 validates, so only it knows of a patience stop: every rank must agree to
        stop, or the others hang in all-reduce."""
        if self.d.world <= 1:
            return stop
        flag = torch.tensor(
            [1 if stop else 0], device=self.device if self.device.type == "cuda" else "cpu"
        )
        dist.broadcast(flag, src=0)
        return stop or ("rank0" if int(flag) else "")

    # --- the loop ----------------------------------------------------------------------

    def fit(self) -> dict[str, Any]:
        """Epochs until a stop condition; returns the summary (also in ``summary.json``)."""
        t, state = self.t, self.state
        budget = Budget(t, float(state["seconds"]))
        stop = ""
        while not stop:
            stop, running = self.train_epoch(budget)
            state["epoch"] += 1
            state["seconds"] = budget.seconds()
            if self.d.main:
                metrics = validate(self.model, self.val, self.device)
                self.save_checkpoints(metrics, self.track_best(metrics))
                self.log_epoch(metrics, running)
                if int(state["stale"]) >= t.patience:
                    stop = stop or "patience"
            if t.max_steps and state["step"] >= t.max_steps:
                stop = stop or "steps"
            stop = self.agree_to_stop(stop)
        summary = {"stop": stop, "best_val_si_snri": state["best"], **state}
        if self.d.main:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
            log.info("train.done", **summary)
        return summary


def run(
    cfg: TrainConfig,
    d: Dist | None = None,
    data: tuple[SpectralLibrary, dict[str, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Train until a stop condition; returns the final summary (also in ``summary.json``).
    ``data``: ``prepare_data(cfg)``'s result, when several runs share one library."""
    return Trainer(cfg, d or Dist(), data).fit()


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
