"""The training pipeline: one run from a config to a trained, probed model.

- :mod:`tmr.train.loop`: the run itself (config, prepare, train, probe, load a run);
- :mod:`tmr.train.metrics`: layer metrics recorded over training;
- :mod:`tmr.train.batched`: several seeds of one config trained as one stacked model;
- :mod:`tmr.train.data_adapter`: any generator's file turned into model inputs, targets
  and probe labels.

The names below are those of :mod:`tmr.train.loop` (``from tmr.train import run``).
"""

from tmr.config import ConfigError
from tmr.train.loop import (
    DEVICES,
    SEED_STREAMS,
    DataCheck,
    OptimConfig,
    Prepared,
    Progress,
    TaskConfig,
    TrainConfig,
    autocast,
    checkpoint_steps,
    evaluate,
    load_run,
    load_train_config,
    prepare,
    probe_run,
    read_metrics,
    resolve_device,
    run,
    total_steps,
    train,
)
from tmr.train.metrics import MetricsConfig

__all__ = [
    "DEVICES",
    "SEED_STREAMS",
    "ConfigError",
    "DataCheck",
    "MetricsConfig",
    "OptimConfig",
    "Prepared",
    "Progress",
    "TaskConfig",
    "TrainConfig",
    "autocast",
    "checkpoint_steps",
    "evaluate",
    "load_run",
    "load_train_config",
    "prepare",
    "probe_run",
    "read_metrics",
    "resolve_device",
    "run",
    "total_steps",
    "train",
]
