"""Training end to end on a tiny model and a pseudo-mineral library written as files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rssnet.errors import ConfigError, ModelFileError
from rssnet.model.checkpoint import load_checkpoint
from rssnet.training.config import load_train_config
from rssnet.training.synthetic import pseudo_library
from rssnet.training.train import lr_at, main, prepare_data, run


def write_library(folder: Path, n: int = 24) -> Path:
    axis = np.linspace(150, 1250, 1100, dtype=np.float32)
    lib = pseudo_library(axis, n, seed=5)
    folder.mkdir(parents=True, exist_ok=True)
    for name, row in zip(lib.names, lib.spectra, strict=True):
        np.savetxt(folder / f"{name}.csv", np.stack([axis, row], 1), delimiter=",")
    return folder


def write_config(tmp: Path, **train: object) -> Path:
    lib = write_library(tmp / "lib")
    lines = [
        "[model]",
        'preset = "tiny"',
        "[data]",
        f'library = "{lib}"',
        "val_size = 32",
        "[train]",
        f'out = "{tmp / "run"}"',
        "batch = 8",
        "workers = 0",
        "threads = 1",
        "warmup_steps = 5",
        f"lr = {train.pop('lr', 3e-3)}",
        "progress = false",
    ]
    lines += [f"{k} = {json.dumps(v)}" for k, v in train.items()]
    cfg = tmp / "train.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def test_tiny_model_learns_and_checkpoints(tmp_path: Path) -> None:
    cfg = load_train_config(write_config(tmp_path, max_steps=120, epoch_steps=40))
    summary = run(cfg)
    log = [json.loads(x) for x in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [40, 80, 120]
    assert log[-1]["val_si_snri"] > log[0]["val_si_snri"] + 1.0  # it learns
    assert summary["stop"] == "steps"
    best = load_checkpoint(tmp_path / "run/best.pt")
    assert best.meta["library_id"].startswith("lib:")
    assert best.meta["metrics"]["val_si_snri"] == pytest.approx(summary["best_val_si_snri"])


def test_resume_continues_from_last_checkpoint(tmp_path: Path) -> None:
    path = write_config(tmp_path, max_steps=20, epoch_steps=10)
    run(load_train_config(path))
    cfg = load_train_config(path)
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_steps": 40})})
    summary = run(cfg)
    steps = [json.loads(x)["step"] for x in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    assert steps == [10, 20, 30, 40]
    assert summary["step"] == 40


def test_init_starts_from_weights_with_a_fresh_schedule(tmp_path: Path) -> None:
    first = write_config(tmp_path, max_steps=12, epoch_steps=12)
    run(load_train_config(first))
    trained = load_checkpoint(tmp_path / "run/best.pt")
    finetune = tmp_path / "ft"
    finetune.mkdir()
    cfg = load_train_config(
        write_config(
            finetune, max_steps=1, epoch_steps=1, init=str(tmp_path / "run/last.pt"), lr=1e-9
        )
    )
    run(cfg)
    log = [json.loads(x) for x in (finetune / "run/log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1]  # fresh counters, not the 12 steps of the first run
    # With a vanishing learning rate the weights are the initial ones: validation matches.
    assert log[0]["val_si_snri"] == pytest.approx(trained.meta["metrics"]["val_si_snri"], abs=0.05)


def test_init_from_another_architecture_is_a_clear_error(tmp_path: Path) -> None:
    run(load_train_config(write_config(tmp_path, max_steps=2, epoch_steps=2)))
    other = tmp_path / "other"
    other.mkdir()
    path = write_config(other, max_steps=2, init=str(tmp_path / "run/last.pt"))
    path.write_text(path.read_text().replace('preset = "tiny"', 'preset = "default"'))
    with pytest.raises(ModelFileError, match=r"last\.pt.*not a default model"):
        run(load_train_config(path))


def test_bad_train_config_exits_78_listing_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nbatch = 0\nlr = -1\nbogus = 1\n")
    assert main(["--config", str(bad)]) == 78
    err = capsys.readouterr().err
    assert "train.batch" in err and "train.lr" in err and "train.bogus" in err


def test_lr_schedule_warms_up_then_anneals(tmp_path: Path) -> None:
    cfg = load_train_config(write_config(tmp_path))
    assert lr_at(0.0, 0, cfg) < lr_at(0.0, 4, cfg) <= cfg.train.lr
    assert lr_at(0.5, 100, cfg) < cfg.train.lr
    assert lr_at(1.0, 100, cfg) == pytest.approx(cfg.train.min_lr)


@pytest.mark.slow
def test_torchrun_ddp_gloo_two_cpu_processes(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, max_steps=6, epoch_steps=3, device="cpu")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "rssnet.training.train",
            "--config",
            str(cfg),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["step"] == 6
    assert summary["samples"] == 6 * 8 * 2  # both ranks trained
    assert load_checkpoint(tmp_path / "run/best.pt").meta["world"] == 2


def test_cpu_clock_budget_stops_on_this_process_cpu_time(tmp_path: Path) -> None:
    budget_min = 0.03
    cfg = load_train_config(
        write_config(tmp_path, clock="cpu", max_minutes=budget_min, epoch_steps=4)
    )
    cpu0 = time.process_time()
    summary = run(cfg)
    used = time.process_time() - cpu0
    assert summary["stop"] == "budget"
    # The recorded budget clock is this process's CPU time: at least the budget (it stops
    # only past it), at most what the process used in total (setup included).
    assert budget_min * 60 <= summary["seconds"] <= used
    log = [json.loads(x) for x in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    assert [r["seconds"] for r in log] == sorted(r["seconds"] for r in log)


def test_unknown_clock_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="clock"):
        load_train_config(write_config(tmp_path, clock="gpu"))


def test_runs_can_share_one_prepared_library(tmp_path: Path) -> None:
    first = load_train_config(write_config(tmp_path / "a", max_steps=4, epoch_steps=4))
    data = prepare_data(first)
    second = first.model_copy(
        update={"train": first.train.model_copy(update={"out": str(tmp_path / "b" / "run")})}
    )
    for cfg in (first, second):
        assert run(cfg, data=data)["step"] == 4
    assert (tmp_path / "b/run/last.pt").exists()
