"""``townlet-capture``: run a behaviour policy in a world and write a format v1 dataset.

A Hydra app sharing the ``world=`` and ``paths=`` groups with ``townlet-train``::

    townlet-capture out=data/qc world=queue_conflict ticks=2000 epsilon=0.1

"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from townlet.cli._common import USER_ERROR_EXIT, console, error_exit, hydra_raises, user_wants_trace
from townlet.config.schema import conf_dir, register_configs
from townlet.config.schema.paths import PathsConfig
from townlet.replay.storage import check_replaceable
from townlet.world.config import WorldConfig


@dataclass
class CaptureConfig:
    out: str = MISSING  # dataset directory to create
    behaviour: str = "scripted"  # scripted | random
    ticks: int = 400
    epsilon: float = 0.0
    seed: int = 0
    shard_rows: int = 65_536
    compress: bool = False
    overwrite: bool = False
    progress: bool = True
    world: WorldConfig = field(default_factory=WorldConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)


register_configs()
ConfigStore.instance().store(name="capture_schema", node=CaptureConfig, replace=True)


def run_capture(cfg: DictConfig) -> dict[str, Any]:
    from townlet.replay.stats import summarise
    from townlet.rollout.collect import RolloutCaptureService
    from townlet.runs.progress import Counter

    world = OmegaConf.to_object(cfg.world)
    bar = Counter(int(cfg.ticks), "tick", "capture", enabled=bool(cfg.progress), stream=sys.stderr)
    try:
        data = RolloutCaptureService().capture(
            world,
            behaviour=str(cfg.behaviour),
            ticks=int(cfg.ticks),
            seed=int(cfg.seed),
            epsilon=float(cfg.epsilon),
            output_dir=str(cfg.out),
            shard_rows=int(cfg.shard_rows),
            compress=bool(cfg.compress),
            overwrite=bool(cfg.overwrite),
            progress=bar.update_to,
        )
    finally:
        bar.close()
    seconds = float(data.meta.get("capture_seconds", 0.0)) or 1e-9
    summary = summarise(data)
    print(
        f"wrote {cfg.out}: {data.num_transitions:,} transitions "
        f"({data.num_ticks} ticks x {data.num_agents} agents), "
        f"{data.num_transitions / seconds:,.0f} frames/s; reward mean {summary['reward']['mean']:.4f}, "
        f"teacher agreement {summary['teacher_agreement']:.3f}, "
        f"queue conflicts {summary['events']['queue_conflict_events']:.0f}"
    )
    return summary


@hydra.main(config_path=str(conf_dir()), config_name="capture")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        check_out(cfg)
        run_capture(cfg)
    except Exception as exc:  # ends here: Hydra's job runner would echo the overrides first
        raise SystemExit(_exit_for(exc)) from None


def check_out(cfg: DictConfig) -> None:
    """Refuse, before a tick is simulated, an ``out`` that holds files (a dataset is never merged) or,
    with ``overwrite=true``, anything but a dataset."""
    out = Path(str(cfg.out)).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"out={out} is a file; choose a directory path for the dataset")
    if out.is_dir() and any(out.iterdir()) and not cfg.overwrite:
        raise ValueError(
            f"out={out} already exists and holds files; choose another out= or pass overwrite=true"
        )
    check_replaceable(out)


@console("townlet-capture")
def main() -> None:
    try:
        with hydra_raises():
            _hydra_main()
    except Exception as exc:
        raise SystemExit(_exit_for(exc)) from None


def _exit_for(exc: Exception) -> int:
    """One stderr line and the exit code; a bug, a closed pipe or ``HYDRA_FULL_ERROR=1`` re-raise."""
    from omegaconf.errors import MissingMandatoryValue

    if isinstance(exc, MissingMandatoryValue) and "out" in str(exc) and not user_wants_trace():
        sys.stderr.write("townlet-capture: config error: out=PATH is required (the dataset directory)\n")
        return USER_ERROR_EXIT
    bad_input = isinstance(exc, ValueError | RuntimeError | OSError) and not isinstance(exc, BrokenPipeError)
    return error_exit("townlet-capture", exc, bad_input=bad_input)


if __name__ == "__main__":
    main()
