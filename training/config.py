"""``rssnet train --config FILE``: the training configuration (TOML, pydantic)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rssnet.errors import ConfigError


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelSection(_Frozen):
    preset: str = "default"
    overrides: dict[str, Any] = Field(default_factory=dict)


class DataSection(_Frozen):
    library: str = "../shared/data/rruff/excellent_unoriented.zip"
    split: Literal["mineral", "rruff_id"] = "mineral"
    split_seed: int = 0
    val_size: int = Field(256, ge=8)
    val_seed: int = 1
    crop: int = Field(0, ge=0)  # 0: train on the full axis
    snr_db: tuple[float, float] = (10.0, 20.0)
    axis_points: int = Field(1024, ge=16)
    axis_min: float = 200.0
    axis_max: float = 1200.0


class TrainSection(_Frozen):
    out: str = "runs/default"
    batch: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0)
    min_lr: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(100, ge=0)
    clip: float = Field(5.0, gt=0)
    max_minutes: float = Field(60.0, gt=0)
    # What max_minutes counts: "wall" time, or "cpu" time of the training process (the
    # synthesis worker excluded), so that runs sharing a busy machine get equal compute.
    clock: Literal["wall", "cpu"] = "wall"
    # Wall minutes for this invocation alone (0: no limit), apart from max_minutes, which
    # spans every resume and shapes the schedule: a fixed GPU window ends the run on time
    # without shortening the cosine (scripts/gpu-window).
    session_minutes: float = Field(0.0, ge=0)
    max_steps: int = Field(0, ge=0)  # 0: limited by time only
    epoch_steps: int = Field(300, ge=1)
    patience: int = Field(10, ge=1)  # epochs without validation gain before stopping
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = Field(0, ge=0)  # torch intra-op threads; 0: torch's default
    workers: int = Field(1, ge=0)  # synthesis worker processes
    seed: int = 0
    resume: bool = True
    # Start from these weights (a checkpoint of the same architecture) with a fresh schedule
    # and optimizer, when there is no last.pt to resume: fine-tuning, e.g. on crops.
    init: str = ""
    progress: bool = True


class TrainConfig(_Frozen):
    model: ModelSection = Field(default_factory=lambda: ModelSection.model_validate({}))
    data: DataSection = Field(default_factory=lambda: DataSection.model_validate({}))
    train: TrainSection = Field(default_factory=lambda: TrainSection.model_validate({}))


def load_train_config(path: str | Path, base_dir: Path | None = None) -> TrainConfig:
    """Parse and validate; relative paths are resolved against the config file's folder."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(str(p), [f"cannot read: {err}"]) from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(str(p), [f"TOML syntax: {err}"]) from err
    try:
        cfg = TrainConfig.model_validate(raw)
    except ValidationError as err:
        errors = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in err.errors()]
        raise ConfigError(str(p), errors) from err
    root = base_dir or p.parent
    lib = Path(cfg.data.library)
    out = Path(cfg.train.out)
    data = cfg.data.model_copy(update={"library": str(lib if lib.is_absolute() else root / lib)})
    upd = {"out": str(out if out.is_absolute() else root / out)}
    if cfg.train.init and not Path(cfg.train.init).is_absolute():
        upd["init"] = str(root / cfg.train.init)
    train = cfg.train.model_copy(update=upd)
    return cfg.model_copy(update={"data": data, "train": train})
