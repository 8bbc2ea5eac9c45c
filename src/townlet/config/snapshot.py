"""The gate every config file from outside the package passes before Hydra reads it.

A ``.hydra/`` snapshot is editable, and Hydra acts on its ``hydra:`` node while it *composes* (logging
factories are called, ``env_set`` reaches every process), before the ``_target_`` allow-list sees the
job. So ``townlet-train -cp DIR`` and ``townlet-reproduce RUN`` read those files here first as untrusted
YAML (size-limited, no anchors), accept from ``hydra:`` only what a run of this project writes, and hold
job import paths to the project's strategy, logger, model and service classes. A refusal is one line;
nothing is imported outside the allow-list, nothing written, torch not imported."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from townlet.config.hydra_node import (
    SnapshotRefused,
    check_hydra_node,
    check_hydra_overrides,
    check_resolvers,
)
from townlet.config.instantiate import (
    ALLOWED_MODULES,
    ConfigError,
    allowed_modules,
    current_target,
    iter_import_paths,
    resolve_target,
)
from townlet.packaged import CONF_DIR

MAX_YAML_BYTES = 1 << 20
MAX_FILES = 200

#: Packages whose *classes* a snapshot's job may name (strategies, loggers, models, services).
SNAPSHOT_PACKAGES: tuple[str, ...] = (
    *(f"townlet.{m}" for m in ("strategies", "nets", "rollout", "replay", "promotion")),
    *(f"townlet.runs.{m}" for m in ("sinks", "csv_log", "tensorboard", "mlflow_log", "wandb_log")),
    *("torch.optim", "torch.nn"),
)
#: Functions a snapshot's job may name, each exactly so.
SNAPSHOT_FUNCTIONS = frozenset({"townlet.strategies.services.build_default_services"})

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


# ------------------------------------------------------------------------------------------ entries


def check_train_args(args: Sequence[str]) -> None:
    """Check what Hydra would read from outside the package: every YAML of a non-packaged ``-cp``/``-cd``
    dir, a plain ``-cn``, and an ``--experimental-rerun`` dir's ``.hydra/``. An outside primary config has
    none of this project's run-dir settings, so it must name a new, empty ``hydra.run.dir``/``sweep.dir``."""
    for flag, folder in _config_dirs(args):
        if _is_packaged(folder) or not folder.is_dir():
            continue
        files = sorted(folder.rglob("*.yaml"))
        if len(files) > MAX_FILES:
            raise SnapshotRefused(f"{folder} holds {len(files)} YAML files (at most {MAX_FILES} are read)")
        for path in files:
            check_config_file(path, folder)
        if flag in ("-cp", "--config-path"):
            if name := _option(args, ("-cn", "--config-name")):
                _plain(name, f"--config-name {name!r}")
            _check_new_output_dir(args)
    if rerun := _option(args, ("--experimental-rerun",)):
        check_run_snapshot(Path(rerun))


def external_primary(args: Sequence[str]) -> tuple[Path, str] | None:
    """``(folder, config name)`` when ``-cp`` names a primary config dir outside the package."""
    for flag, folder in _config_dirs(args):
        if flag in ("-cp", "--config-path") and not _is_packaged(folder):
            return folder, (_option(args, ("-cn", "--config-name")) or "train").removesuffix(".yaml")
    return None


def _check_new_output_dir(args: Sequence[str]) -> None:
    key = "hydra.sweep.dir" if {"-m", "--multirun"} & set(args) else "hydra.run.dir"
    given = next((a.partition("=")[2] for a in args if a.partition("=")[0] == key), None)
    if not given:
        raise SnapshotRefused(
            f"a config from outside the package (--config-path) needs {key}=NEW_DIR: it has no run-dir "
            "settings of this project (to re-run a saved run as it was: townlet-reproduce RUN)"
        )
    folder = Path(given.strip("'\"")).expanduser()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise SnapshotRefused(f"{key}={given} already exists and is not empty; name a new directory")


def check_run_snapshot(run_dir: Path) -> None:
    """Check a run's ``.hydra/config.yaml``, ``overrides.yaml`` and ``hydra.yaml`` (when present)."""
    hydra_dir = run_dir.expanduser().resolve() / ".hydra"
    config_path, overrides_path, hydra_path = (
        hydra_dir / f"{n}.yaml" for n in ("config", "overrides", "hydra")
    )
    if config_path.is_file():
        check_config_file(config_path, hydra_dir)
    if overrides_path.is_file():
        overrides = load_untrusted_yaml(overrides_path)
        if isinstance(overrides, list):
            check_overrides([str(o) for o in overrides], str(overrides_path))
    if hydra_path.is_file():
        node = load_untrusted_yaml(hydra_path)
        check_resolvers(node, str(hydra_path))
        if isinstance(node, Mapping) and isinstance(node.get("hydra"), Mapping):
            check_hydra_node(node["hydra"], str(hydra_path))
            saved = node["hydra"].get("overrides")
            if isinstance(saved, Mapping):  # Hydra's --experimental-rerun applies these again
                check_hydra_overrides([str(o) for o in saved.get("hydra") or []], str(hydra_path))
            job = node["hydra"].get("job") or {}
            name = job.get("config_name") if isinstance(job, Mapping) else None
            if name is not None:
                _plain(str(name), f"{hydra_path}: hydra.job.config_name={name!r}")
                if not (CONF_DIR / f"{name}.yaml").is_file():
                    raise SnapshotRefused(
                        f"{hydra_path}: hydra.job.config_name={name!r} is not a config of this package "
                        "(a run of townlet-train says 'train')"
                    )


# ------------------------------------------------------------------------------------------- files


class _UntrustedLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases (a few lines of them expand to gigabytes)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            mark = event.start_mark
            raise SnapshotRefused(
                f"{self.name}: line {mark.line + 1}: YAML anchors and aliases (&, *) are not accepted in "
                "a config snapshot; write the values out"
            )
        return super().compose_node(parent, index)


def load_untrusted_yaml(path: Path) -> Any:
    """The YAML at ``path``, at most :data:`MAX_YAML_BYTES`, without anchors or aliases."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise SnapshotRefused(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_YAML_BYTES:
        raise SnapshotRefused(
            f"{path} is larger than {MAX_YAML_BYTES // 1024} KiB; a config snapshot never is"
        )
    loader = _UntrustedLoader(data.decode("utf-8", errors="replace"))
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except SnapshotRefused:
        raise
    except (yaml.YAMLError, RecursionError) as exc:
        detail = str(exc).replace("\n", " ")[:200]
        raise SnapshotRefused(f"{path} is not valid YAML: {detail}") from None
    finally:
        loader.dispose()


def check_config_file(path: Path, root: Path) -> None:
    """One untrusted config file: its ``hydra:`` node, defaults and import paths (a ``hydra/`` group file
    *is* part of Hydra's node, so it is refused)."""
    where = str(path)
    if path.relative_to(root).parts[0] == "hydra":
        raise SnapshotRefused(
            f"{where}: a config dir from outside the package may not replace Hydra's settings"
        )
    node = load_untrusted_yaml(path)
    check_resolvers(node, where)
    if not isinstance(node, Mapping):
        return
    for entry in node.get("defaults") or []:
        text = str(next(iter(entry), "")) if isinstance(entry, Mapping) else str(entry)
        if "hydra" in re.split(r"[/@ ]", text.removeprefix("override ").strip()):
            raise SnapshotRefused(f"{where}: defaults entry {text!r} selects Hydra's settings; remove it")
    if "hydra" in node:
        if not isinstance(node["hydra"], Mapping):
            raise SnapshotRefused(f"{where}: hydra must be a mapping")
        check_hydra_node(node["hydra"], where)
    for key, dotted in iter_import_paths({k: v for k, v in node.items() if k != "hydra"}):
        try:
            check_snapshot_target(dotted, key)
        except ConfigError as exc:
            raise SnapshotRefused(f"{where}: {exc}") from None


def check_overrides(overrides: Sequence[str], where: str) -> None:
    """Saved task overrides: never ``hydra.*``; import paths held to the snapshot list."""
    check_resolvers(list(overrides), where)
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key == "hydra" or key.startswith("hydra.") or key.startswith("hydra/"):
            raise SnapshotRefused(
                f"{where}: override {override!r}: a run's saved overrides never set hydra.* keys, so this "
                "snapshot was edited; remove that line"
            )
        if key.rsplit(".", 1)[-1] == "_target_" or "implementations" in key.split("."):
            check_snapshot_target(value.strip("'\" "), key)


# ----------------------------------------------------------------------------------------- targets


def check_snapshot_target(dotted: str, key: str) -> None:
    """The allow-list narrowed to classes of :data:`SNAPSHOT_PACKAGES` and :data:`SNAPSHOT_FUNCTIONS`."""
    obj = resolve_target(dotted, key)
    if current_target(dotted) in SNAPSHOT_FUNCTIONS:  # a snapshot saved under an old module name too
        return
    packages = (*SNAPSHOT_PACKAGES, *allowed_modules()[len(ALLOWED_MODULES) :])  # + $TOWNLET_ALLOWED_TARGETS
    module = getattr(obj, "__module__", "") or ""
    if not isinstance(obj, type) or not any(module == p or module.startswith(p + ".") for p in packages):
        raise SnapshotRefused(
            f"{key}={dotted!r} is not accepted from a snapshot: only classes of the project's strategies, "
            "loggers, models and services (and of $TOWNLET_ALLOWED_TARGETS) are"
        )


# ------------------------------------------------------------------------------------------- args


def _config_dirs(args: Sequence[str]) -> Iterator[tuple[str, Path]]:
    for flag in ("--config-path", "-cp", "--config-dir", "-cd"):
        value = _option(args, (flag,))
        if value and not value.startswith("pkg://"):
            folder = Path(value.removeprefix("file://")).expanduser()
            if flag in ("--config-path", "-cp") and not folder.is_absolute():
                raise SnapshotRefused(
                    f"{flag} {value}: Hydra reads a relative config path next to its own entry module, "
                    f'not the working directory; pass an absolute path ({flag} "$PWD/{value}")'
                )
            yield flag, folder.resolve()


def _option(args: Sequence[str], flags: tuple[str, ...]) -> str | None:
    """The value of the last of ``flags`` (argparse keeps the last)."""
    found = None
    for i, arg in enumerate(args):
        flag, eq, inline = arg.partition("=")
        if flag in flags:
            found = inline if eq else (args[i + 1] if i + 1 < len(args) else None)
    return found


def _is_packaged(folder: Path) -> bool:
    conf = CONF_DIR.resolve()
    return folder == conf or conf in folder.parents


def _plain(name: str, what: str) -> None:
    if not _PLAIN_NAME.fullmatch(name.removesuffix(".yaml")) or ".." in name:
        raise SnapshotRefused(f"{what} must be a plain config name (no '/', no '..')")
