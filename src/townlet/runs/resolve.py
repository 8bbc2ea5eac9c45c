"""Which world config and which checkpoint belong to a run: the one answer every command uses.

The checkpoint is the one ``result.json`` reports, so evaluating a run again meets the policy its
result describes. The snapshot is untrusted input, read through the snapshot gate's reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from townlet.config.hydra_node import SnapshotRefused
from townlet.config.snapshot import load_untrusted_yaml
from townlet.runs.atomic import loads_json
from townlet.runs.rundir import RESULT_FILE

LAST = "last.pt"
BEST = "best.pt"
SNAPSHOT = Path(".hydra") / "config.yaml"
WHICH = ("best", "last")


class RunFilesError(ValueError):
    """A run, checkpoint or snapshot that cannot be used; the message is one line with the fix."""


@dataclass(frozen=True)
class RunFiles:
    """What belongs to one run. ``run_dir``/``config``/``result`` are None for a lone checkpoint file."""

    checkpoint: Path
    run_dir: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def world_config(self) -> dict[str, Any] | None:
        """The run's ``world`` block (None without a snapshot: the caller falls back to the checkpoint's)."""
        world = self.config.get("world")
        return dict(world) if isinstance(world, dict) else None


def resolve_run(source: str | Path, which: str | None = None) -> RunFiles:
    """``source`` (a run dir, its ``checkpoints/`` or a ``.pt`` file); ``which=None``: the checkpoint
    ``result.json`` names, else ``best.pt`` falling back to ``last.pt``."""
    if which is not None and which not in WHICH:
        raise RunFilesError(f"which={which!r}; use which=best or which=last")
    path = Path(source).expanduser()
    if not path.exists():
        raise RunFilesError(f"checkpoint path {path} does not exist; pass a run directory or a .pt file")
    run_dir = run_dir_of(path)
    result = _read_result(run_dir) if run_dir is not None else {}
    config = read_snapshot(run_dir / SNAPSHOT) if run_dir is not None else {}
    checkpoint = path if path.is_file() else _pick_checkpoint(path, which, result)
    return RunFiles(checkpoint=checkpoint, run_dir=run_dir, config=config, result=result)


def read_snapshot(path: Path) -> dict[str, Any]:
    """A run's saved config as plain data ({} when absent); bounded, alias-free YAML, else one line."""
    if not path.is_file():
        return {}
    try:
        data = load_untrusted_yaml(path)
    except SnapshotRefused as exc:
        raise RunFilesError(f"{exc} (restore the run's .hydra/)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RunFilesError(f"{path} must hold a mapping; restore the run's .hydra/config.yaml")
    return {str(k): v for k, v in data.items()}


def run_dir_of(path: Path) -> Path | None:
    """The folder holding ``.hydra/config.yaml`` or ``result.json``: ``path`` itself or up to two above."""
    start = path.resolve()
    for folder in (start, start.parent, start.parent.parent):
        if folder.is_dir() and ((folder / SNAPSHOT).is_file() or (folder / RESULT_FILE).is_file()):
            return folder
    return None


def _read_result(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RESULT_FILE
    if not path.is_file():
        return {}
    try:
        data = loads_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunFilesError(
            f"{path} is not readable JSON ({type(exc).__name__}); rerun the training"
        ) from None
    return data if isinstance(data, dict) else {}


def _pick_checkpoint(path: Path, which: str | None, result: dict[str, Any]) -> Path:
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    reported = result.get("checkpoint")
    if which is None and isinstance(reported, str) and (folder / Path(reported).name).is_file():
        return folder / Path(reported).name  # the run dir may have moved since result.json was written
    order = [LAST] if which == "last" else [BEST, LAST]
    for name in order:
        if (folder / name).is_file():
            return folder / name
    raise RunFilesError(
        f"no checkpoint found in {path} (looked for {', '.join(str(folder / n) for n in order)}); "
        "was the run trained with a torch strategy (strategy=bc, ppo or anneal)?"
    )
