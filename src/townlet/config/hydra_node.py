"""What a config file from outside the package may ask of Hydra (its ``hydra:`` node, saved ``hydra.*``
overrides, ``${resolver:...}`` calls): Hydra acts on these while composing, so only what a run of this
project writes itself is accepted, and a refusal is one line."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from townlet.config.instantiate import HYDRA_TARGETS, ConfigError, iter_import_paths
from townlet.packaged import CONF_DIR

#: ``hydra.callbacks`` a snapshot may name: the ones Hydra's own whitelist lets ``townlet-train`` build.
CALLBACKS = frozenset(HYDRA_TARGETS)
#: What a launcher's or sweeper's node may build besides the plugin: Optuna's samplers and storages.
PLUGIN_PARTS = frozenset(
    [f"optuna.samplers.{n}" for n in ("TPESampler", "RandomSampler", "CmaEsSampler", "NSGAIISampler")]
    + [f"optuna.samplers.{n}" for n in ("GridSampler", "QMCSampler")]
    + [f"optuna.storages.{n}" for n in ("RDBStorage", "JournalStorage", "journal.JournalFileBackend")]
)

_STREAMS = frozenset({"ext://sys.stdout", "ext://sys.stderr"})
_RUN_DIR_LOG = re.compile(r"\$\{hydra\.runtime\.output_dir\}/[A-Za-z0-9_.${}-]+")

#: Resolvers a snapshot's ``${name:...}`` may call: those a run's own files use (``hydra.yaml`` holds
#: ``hydra_override_dirname``). ``oc.env`` would copy an environment variable (a token) into the run's
#: records; ``oc.create``/``oc.decode`` build nodes past these checks.
RESOLVERS = frozenset({"now", "townlet_root", "hydra", "hydra_override_dirname", "oc.select"})
_RESOLVER_CALL = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*:")
_HANDLER_KEYS = frozenset({"class", "formatter", "level", "stream", "filename", "mode", "encoding"})
_FORMATTER_KEYS = frozenset({"format", "datefmt", "style"})


class SnapshotRefused(ConfigError):
    """An untrusted config file asks for something a run of this project never writes."""


#: ``hydra.*`` overrides a run's ``hydra.yaml`` may carry: where its files went and which plugin ran it.
_HYDRA_OVERRIDES = re.compile(
    r"hydra\.(run\.dir|sweep\.dir|sweep\.subdir|mode|verbose|job\.name|launcher\..+|sweeper\..+)"
    r"|hydra/(launcher|sweeper)"
)
#: submitit settings that hand shell commands or arguments to the cluster.
_COMMAND_KEYS = frozenset({"setup", "srun_args", "additional_parameters"})


def check_hydra_overrides(overrides: Sequence[str], where: str) -> None:
    """A run's saved ``hydra.*`` overrides: run/sweep dirs and plugin settings only (no callbacks,
    logging, ``env_set`` or search path), plugin classes as in :func:`check_hydra_node`."""
    check_resolvers(list(overrides), where)
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if not _HYDRA_OVERRIDES.fullmatch(key):
            raise SnapshotRefused(
                f"{where}: saved override {override!r} is not one a run of this project makes; remove it"
            )
        if key.split(".")[-1] in _COMMAND_KEYS:
            raise SnapshotRefused(f"{where}: saved override {override!r} would run commands; remove it")
        if key.endswith("._target_"):
            _check_plugin({key.split(".")[1]: {"_target_": value.strip("'\" ")}}, key.split(".")[1], where)
        if key.endswith("dir") and ".." in re.split(r"[/\\]", value):
            raise SnapshotRefused(f"{where}: saved override {override!r} climbs out with '..'")


def check_resolvers(node: Any, where: str) -> None:
    """Every ``${name:...}`` in keys and values calls one of :data:`RESOLVERS`."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            check_resolvers(key, where)
            check_resolvers(value, where)
    elif isinstance(node, list):
        for value in node:
            check_resolvers(value, where)
    elif isinstance(node, str):
        for name in _RESOLVER_CALL.findall(node):
            if name not in RESOLVERS:
                raise SnapshotRefused(
                    f"{where}: the resolver ${{{name}:...}} is not accepted from a snapshot "
                    f"(only {', '.join(sorted(RESOLVERS))}); write the value out"
                )


# -------------------------------------------------------------------------------------- hydra node


def check_hydra_node(hydra: Mapping[str, Any], where: str) -> None:
    """Refuse anything in a ``hydra:`` node that a run of this project does not write itself."""
    if hydra.get("searchpath"):
        raise SnapshotRefused(f"{where}: hydra.searchpath is not accepted from a snapshot; remove it")
    for name, callback in dict(hydra.get("callbacks") or {}).items():
        target = callback.get("_target_") if isinstance(callback, Mapping) else callback
        if target not in CALLBACKS:
            raise SnapshotRefused(
                f"{where}: hydra.callbacks.{name}={target!r} is not allowed; a snapshot may name only "
                f"{', '.join(sorted(CALLBACKS))}"
            )
    _check_plugin(hydra, "launcher", where)
    _check_plugin(hydra, "sweeper", where)
    for key in ("hydra_logging", "job_logging"):
        if hydra.get(key) is not None:
            _check_logging(hydra[key], f"hydra.{key}", where)
    job = hydra.get("job") or {}
    env_set = dict(job.get("env_set") or {}) if isinstance(job, Mapping) else {}
    if env_set:  # only the packaged one, read when there is something to compare
        packaged = yaml.safe_load((CONF_DIR / "hydra" / "default.yaml").read_text(encoding="utf-8"))
        if env_set != dict(packaged.get("job", {}).get("env_set") or {}):
            raise SnapshotRefused(
                f"{where}: hydra.job.env_set={env_set} is not accepted from a snapshot (it reaches every "
                "process the run starts); remove it"
            )
    subdir = hydra.get("output_subdir", ".hydra")
    if subdir not in (".hydra", None):
        raise SnapshotRefused(f"{where}: hydra.output_subdir={subdir!r} must be .hydra (or null)")
    for group in ("run", "sweep"):
        node = hydra.get(group) or {}
        for key in ("dir", "subdir"):
            value = node.get(key) if isinstance(node, Mapping) else None
            if value is not None and ".." in re.split(r"[/\\]", str(value)):
                raise SnapshotRefused(f"{where}: hydra.{group}.{key}={value!r} climbs out with '..'")
    for key, dotted in iter_import_paths(
        {k: v for k, v in hydra.items() if k not in ("callbacks", "launcher", "sweeper")}
    ):
        raise SnapshotRefused(f"{where}: hydra.{key}={dotted!r} is not accepted from a snapshot")


def _check_plugin(hydra: Mapping[str, Any], key: str, where: str) -> None:
    """The plugin itself must be one Hydra has discovered (its own or an installed plugin)."""
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher
    from hydra.plugins.sweeper import Sweeper

    node = hydra.get(key)
    if not isinstance(node, Mapping):
        return
    for path, dotted in iter_import_paths(node, f"hydra.{key}"):
        if path == f"hydra.{key}._target_":
            found = Plugins.instance().discover(Launcher if key == "launcher" else Sweeper)
            ok = dotted in {f"{c.__module__}.{c.__name__}" for c in found}
        else:
            ok = dotted in PLUGIN_PARTS
        if not ok:
            raise SnapshotRefused(
                f"{where}: {path}={dotted!r} is not a launcher or sweeper this project uses"
            )


def _check_logging(node: Any, key: str, where: str) -> None:
    """Only formats, stream handlers on stdout/stderr and files inside the run dir."""
    if not isinstance(node, Mapping):
        raise SnapshotRefused(f"{where}: {key} must be a mapping")
    for name, formatter in dict(node.get("formatters") or {}).items():
        extra = set(formatter or {}) - _FORMATTER_KEYS if isinstance(formatter, Mapping) else {"?"}
        if extra:
            raise SnapshotRefused(
                f"{where}: {key}.formatters.{name} may set only {', '.join(sorted(_FORMATTER_KEYS))}"
            )
    for name, handler in dict(node.get("handlers") or {}).items():
        _check_handler(handler, f"{key}.handlers.{name}", where)
    if node.get("filters"):
        raise SnapshotRefused(f"{where}: {key}.filters is not accepted from a snapshot")
    for name, logger in dict(node.get("loggers") or {}).items():
        if isinstance(logger, Mapping) and set(logger) - {"level", "handlers", "propagate"}:
            raise SnapshotRefused(f"{where}: {key}.loggers.{name} may set only level, handlers, propagate")


def _check_handler(handler: Any, key: str, where: str) -> None:
    if not isinstance(handler, Mapping) or set(handler) - _HANDLER_KEYS:
        raise SnapshotRefused(
            f"{where}: {key} may set only {', '.join(sorted(_HANDLER_KEYS))} (no '()' factories)"
        )
    cls = handler.get("class")
    if cls == "logging.StreamHandler" and handler.get("stream", "ext://sys.stderr") in _STREAMS:
        return
    if (
        cls == "logging.FileHandler"
        and _RUN_DIR_LOG.fullmatch(str(handler.get("filename", "")))
        and ".." not in str(handler.get("filename"))
    ):
        return
    raise SnapshotRefused(
        f"{where}: {key} (class {cls!r}) is not accepted: only logging.StreamHandler on sys.stdout/stderr "
        "and logging.FileHandler at ${hydra.runtime.output_dir}/<name>"
    )
