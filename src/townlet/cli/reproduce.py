"""``townlet-reproduce <run dir>``: re-run a finished run from its snapshot and compare the results.

The saved ``config.yaml`` has lost the schemas and the Hydra settings (hydra#2720, #3248), so the
config is recomposed (``train`` + the saved overrides) and the saved ``config.yaml`` laid on top,
pinning every value even if ``conf/`` changed. A snapshot is a file anyone can edit: it passes the
snapshot gate and ``townlet-train``'s preflight before anything runs.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import JobStatus, run_job
from hydra.types import HydraContext, RunMode
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from townlet.cli._common import console
from townlet.cli.preflight import check_job
from townlet.cli.train import run_job as train_job
from townlet.config.instantiate import HYDRA_TARGETS, ConfigError, check_import_paths
from townlet.config.schema import conf_dir, register_configs
from townlet.config.schema.paths import PathsConfig
from townlet.config.snapshot import check_run_snapshot, load_untrusted_yaml
from townlet.dto import RunRecord
from townlet.runs.atomic import atomic_write_text, loads_json
from townlet.runs.rundir import recorded_run_id
from townlet.runs.sinks import error_line

EXIT_IDENTICAL, EXIT_DIFFERENT, EXIT_REFUSED, EXIT_RUN_FAILED = 0, 1, 2, 3

# Result fields that measure the machine, not the learning: never compared.
_TIMING_KEY = re.compile(
    r"(duration|elapsed|timestamp|throughput|per_sec|_sec$|_secs$|_seconds$|^sps$|_sps$|_at$|^time$|_time$)"
)


class ReproduceError(ValueError):
    """The run directory cannot be reproduced; the message names the file and the fix."""


@dataclass(frozen=True)
class Snapshot:
    run_dir: Path
    config_name: str
    job_name: str
    overrides: list[str]
    config: dict[str, Any]


@dataclass(frozen=True)
class Difference:
    field: str
    original: Any
    reproduced: Any


# ----------------------------------------------------------------------------------------- snapshot


def load_snapshot(run_dir: str | Path) -> Snapshot:
    """Read ``.hydra/{overrides,config,hydra}.yaml`` once the gate has passed them (import paths included)."""
    root = Path(run_dir).expanduser().resolve()
    hydra_dir = root / ".hydra"
    if not root.is_dir():
        raise ReproduceError(f"run directory {root} does not exist")
    for name in ("overrides.yaml", "config.yaml"):
        if not (hydra_dir / name).is_file():
            raise ReproduceError(
                f"{hydra_dir / name} is missing: only runs launched by townlet-train (with "
                "hydra.output_subdir left at .hydra) can be reproduced"
            )
    try:  # as untrusted YAML, hydra.yaml's hydra: node included, before anything else parses them
        check_run_snapshot(root)
    except ConfigError as exc:
        raise ReproduceError(f"refusing to reproduce {root}: {exc}") from None
    overrides = load_untrusted_yaml(hydra_dir / "overrides.yaml")
    config = load_untrusted_yaml(hydra_dir / "config.yaml")
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ReproduceError(f"{hydra_dir / 'overrides.yaml'} must be a list of override strings")
    if not isinstance(config, dict):
        raise ReproduceError(f"{hydra_dir / 'config.yaml'} must be a mapping")
    hydra_cfg = load_untrusted_yaml(hydra_dir / "hydra.yaml") if (hydra_dir / "hydra.yaml").is_file() else {}
    job = (hydra_cfg or {}).get("hydra", {}).get("job", {}) if isinstance(hydra_cfg, dict) else {}
    return Snapshot(
        run_dir=root,
        config_name=str(job.get("config_name") or "train"),
        job_name=str(job.get("name") or "train"),
        overrides=list(overrides),
        config=config,
    )


# ----------------------------------------------------------------------------------------- compose


def compose_config(snapshot: Snapshot, new_run_dir: Path | None) -> tuple[Any, Path]:
    """Call inside Hydra's context on ``conf/``; every ``_target_`` is checked again, because the saved
    overrides may select groups whose files changed since."""
    try:
        composed = compose(snapshot.config_name, overrides=snapshot.overrides, return_hydra_config=True)
        hydra_node = composed.hydra
        with open_dict(composed):
            del composed["hydra"]
        cfg = OmegaConf.merge(composed, OmegaConf.create(snapshot.config))
    except Exception as exc:
        raise ReproduceError(
            f"cannot recompose {snapshot.run_dir}: {error_line(exc)} (the saved overrides or config no "
            "longer fit conf/; try -cp <run dir>/.hydra -cn config hydra.run.dir=NEW, see docs/sweeps.md)"
        ) from exc
    try:
        check_import_paths(cfg)
        check_import_paths({"hydra": {"callbacks": hydra_node.callbacks or {}}}, extra_modules=("hydra",))
    except ConfigError as exc:
        raise ReproduceError(f"refusing to reproduce {snapshot.run_dir}: {exc}") from None
    if new_run_dir is None:  # under this machine's outputs root: a snapshot never chooses where we write
        stamp = time.strftime("%Y-%m-%d/%H-%M-%S") + f"-{time.time_ns() // 1000 % 1_000_000:06d}"
        outputs = OmegaConf.create({"paths": OmegaConf.structured(PathsConfig)}).paths.output_root
        new_run_dir = Path(outputs) / "reproduce" / f"{stamp}_{snapshot.run_dir.name}"
    new_run_dir = new_run_dir.expanduser().resolve()
    with open_dict(cfg):
        cfg.hydra = hydra_node
    with open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.RUN
        cfg.hydra.run.dir = str(new_run_dir)
        cfg.hydra.job.num = 0
    return cfg, new_run_dir


# --------------------------------------------------------------------------------------------- run


def run_reproduction(snapshot: Snapshot, new_run_dir: Path | None, announce: Callable[[Path], None]) -> Path:
    """Hydra's own job runner (same snapshot files, logging, env_set and callbacks as ``townlet-train``);
    ``announce`` hears the new run dir once every check has passed."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(conf_dir()), job_name=snapshot.job_name):
        cfg, target_dir = compose_config(snapshot, new_run_dir)
        if (target_dir / "result.json").exists():
            raise ReproduceError(f"{target_dir} already holds a result; choose another --output-dir")
        try:  # every value, before Hydra's run_job writes the new dir's .hydra/
            check_job(cfg)
        except ConfigError as exc:
            raise ReproduceError(f"refusing to reproduce {snapshot.run_dir}: {exc}") from None
        announce(target_dir)
        errors: list[Exception] = []  # the job's error, read here, not from Hydra's private field

        def task(job_cfg: Any) -> float:
            try:
                return train_job(job_cfg)
            except Exception as exc:
                errors.append(exc)
                raise

        ret = run_job(
            task_function=task,
            config=cfg,
            job_dir_key="hydra.run.dir",
            job_subdir_key=None,
            hydra_context=HydraContext(
                config_loader=GlobalHydra.instance().config_loader(), callbacks=cast(Any, JobCallbacks(cfg))
            ),
        )
    _record_parent(target_dir, snapshot.run_dir)
    if ret.status != JobStatus.COMPLETED:
        error = errors[-1] if errors else RuntimeError("unknown error")
        raise RunFailedError(f"the reproduced run in {target_dir} failed: {type(error).__name__}: {error}")
    return target_dir


class RunFailedError(RuntimeError): ...


class JobCallbacks:
    """The run's ``hydra.callbacks``, built under townlet-train's whitelist, for Hydra's job runner."""

    def __init__(self, cfg: Any) -> None:
        nodes = OmegaConf.select(cfg, "hydra.callbacks") or {}
        self.callbacks = [instantiate(n, _execution_whitelist_=list(HYDRA_TARGETS)) for n in nodes.values()]

    def on_job_start(self, **kwargs: Any) -> None:
        for callback in self.callbacks:
            callback.on_job_start(**kwargs)

    def on_job_end(self, **kwargs: Any) -> None:
        for callback in reversed(self.callbacks):
            callback.on_job_end(**kwargs)


def _record_parent(new_run_dir: Path, parent: Path) -> None:
    record_path = new_run_dir / "run.json"
    if not record_path.is_file():
        return
    record = RunRecord.model_validate_json(record_path.read_text(encoding="utf-8"))
    updated = record.model_copy(update={"parent_run": recorded_run_id(parent) or str(parent)})
    atomic_write_text(record_path, updated.model_dump_json(indent=2) + "\n")


# ----------------------------------------------------------------------------------------- compare


def read_result(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "result.json"
    try:
        data = loads_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReproduceError(f"{path} is missing: the run has no result to compare (did it finish?)") from exc
    except ValueError as exc:
        raise ReproduceError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ReproduceError(f"{path} must hold a JSON object")
    return data


_MISSING = "<absent>"


def _diff(a: Any, b: Any, path: str, out: list[Difference]) -> None:
    """A key on one side only is one difference, not one per leaf; null and absent are equal."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in dict.fromkeys([*a, *b]):
            where = f"{path}.{key}" if path else str(key)
            timing = _TIMING_KEY.search(where.rsplit(".", 1)[-1].split("[", 1)[0])
            if timing or (a.get(key) is None and b.get(key) is None):
                continue
            if key not in a or key not in b:
                out.append(Difference(where, _short(a.get(key, _MISSING)), _short(b.get(key, _MISSING))))
            else:
                _diff(a[key], b[key], where, out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (left, right) in enumerate(zip(a, b, strict=True)):
            _diff(left, right, f"{path}[{i}]", out)
    elif a != b:
        out.append(Difference(path, _short(a), _short(b)))


def _short(value: Any) -> Any:
    if isinstance(value, Mapping):
        return f"<{len(value)} fields>"
    if isinstance(value, list) and len(value) > 8:
        return f"<list of {len(value)}>"
    return value


def _normalised(node: Any, run_dir: Path) -> Any:
    """Paths inside the run's own directory compare equal across runs, and so do datasets of one name:
    a cached dataset's folder is named by its content, under a data dir that moves with ``TOWNLET_ROOT``."""
    if isinstance(node, Mapping):
        return {
            k: Path(v).name if k == "manifest" and isinstance(v, str) else _normalised(v, run_dir)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_normalised(v, run_dir) for v in node]
    if isinstance(node, str):
        return node.replace(str(run_dir), "<run_dir>")
    return "nan" if isinstance(node, float) and math.isnan(node) else node


def compare_results(original_dir: Path, reproduced_dir: Path) -> list[Difference]:
    diffs: list[Difference] = []
    original, reproduced = (_normalised(read_result(d), d) for d in (original_dir, reproduced_dir))
    _diff(original, reproduced, "", diffs)
    return diffs


def format_differences(diffs: Sequence[Difference]) -> str:
    if not diffs:
        return "identical (timings excluded)"
    lines = [f"{len(diffs)} field(s) differ (timings excluded):"]
    lines += [f"  {d.field}: {d.original!r} -> {d.reproduced!r}" for d in diffs]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- CLI


@console("townlet-reproduce")
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="townlet-reproduce",
        description=(
            "Re-run a finished run from its saved .hydra snapshot into a new directory and compare the "
            "two results field by field (timings excluded). Exit 0 identical, 1 different, "
            "2 refused/unusable snapshot, 3 the new run failed."
        ),
    )
    parser.add_argument("run_dir", type=Path, help="the finished run (holds .hydra/ and result.json)")
    parser.add_argument("--output-dir", type=Path, help="the new run's dir (default: outputs/reproduce/)")
    parser.add_argument(
        "--compare-with",
        type=Path,
        metavar="OTHER_RUN_DIR",
        help="do not run anything: only compare run_dir's result with this run's",
    )
    args = parser.parse_args(argv)
    original = args.run_dir.expanduser().resolve()
    try:
        if args.compare_with is not None:
            other = args.compare_with.expanduser().resolve()
        else:
            read_result(original)  # fail before spending a training run on an unfinished original
            other = run_reproduction(
                load_snapshot(original),
                args.output_dir,
                lambda new: print(f"reproducing {original} in {new}", file=sys.stderr),
            )
        diffs = compare_results(original, other)
    except (ReproduceError, RunFailedError) as exc:
        print(f"townlet-reproduce: {exc}", file=sys.stderr)
        return EXIT_REFUSED if isinstance(exc, ReproduceError) else EXIT_RUN_FAILED
    print(format_differences(diffs))
    return EXIT_IDENTICAL if not diffs else EXIT_DIFFERENT


if __name__ == "__main__":
    sys.exit(main())
