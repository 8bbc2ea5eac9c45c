"""The one place config nodes become objects, and the allow-list every dotted import path goes through.

An allow-list of *defining modules*, not name prefixes: ``townlet.`` also matches
``townlet.runs.record.os.system``, and ``_target_`` keys alone miss ``services.implementations``. Only
the longest allowed-module prefix is imported; the object is accepted if ``obj.__module__`` is allowed
too, or it is a named library object. Nothing outside the allow-list is ever imported."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import types
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

#: Packages whose modules (the package and everything below it) may define a config's classes.
ALLOWED_MODULES: tuple[str, ...] = ("townlet", "torch.optim", "torch.nn")

#: Library objects a config may name, each only by exactly this name.
ALLOWED_OBJECTS: frozenset[str] = frozenset({
    "functools.partial", "pathlib.Path", "pathlib.PurePosixPath",
    "numpy.array", "numpy.asarray", "numpy.dtype", "numpy.float32", "numpy.float64", "numpy.int64",
})  # fmt: skip

#: What Hydra itself may build from a config's ``hydra:`` node (callbacks, logging
#: factories): exactly these classes, passed to Hydra's execution whitelist around every entry point,
#: so a snapshot naming anything else is refused by Hydra before it is called.
HYDRA_TARGETS: tuple[str, ...] = (
    "townlet.sweeps.summary.SweepSummaryCallback",
    "townlet.sweeps.mlflow_parent.MlflowSweepCallback",
    "townlet.cli.preflight.PreflightCallback",
)

EXTRA_TARGETS_ENV = "TOWNLET_ALLOWED_TARGETS"

#: Components that moved to another module: a snapshot saved under the old name (``.hydra/``) still
#: re-runs and reproduces. Maps an old dotted prefix to its current one.
MOVED_TARGETS: dict[str, str] = {
    "townlet.policy.training.strategies.": "townlet.strategies.",
    "townlet.policy.training.services.build_default_services": (
        "townlet.strategies.services.build_default_services"
    ),
    "townlet.runs.sweep.": "townlet.sweeps.summary.",
}

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def current_target(target: str) -> str:
    """``target`` under its current module name (unchanged unless it names a moved component)."""
    for old, new in MOVED_TARGETS.items():
        if target.startswith(old):
            return new + target[len(old) :]
    return target


def upgrade_targets(node: Any) -> None:
    """Rename moved ``_target_``s in place in a (possibly nested) config node."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "_target_" and isinstance(value, str):
                node[key] = current_target(value)  # type: ignore[index]
            else:
                upgrade_targets(value)
    elif isinstance(node, Sequence) and not isinstance(node, str | bytes):
        for value in node:
            upgrade_targets(value)


def allowed_modules(extra: Sequence[str] = ()) -> tuple[str, ...]:
    """Built-in packages, ``extra``, and comma-separated ones from ``$TOWNLET_ALLOWED_TARGETS``."""
    env = [p.strip().rstrip(".") for p in os.environ.get(EXTRA_TARGETS_ENV, "").split(",")]
    return (*ALLOWED_MODULES, *extra, *(p for p in env if p))


class ConfigError(ValueError):
    """A configuration that cannot be turned into a run; the message says what to change."""


class TargetNotAllowedError(ConfigError): ...


class ComponentNotAvailableError(ConfigError):
    """A dotted name inside the allow-list that names nothing in this installation."""


def iter_import_paths(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """``(full key, dotted name)`` of every ``_target_`` and every ``implementations`` value."""
    if isinstance(node, Mapping):  # dicts and DictConfig
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "_target_" and isinstance(value, str):
                yield (where, value)
            elif key == "implementations" and isinstance(value, Mapping):
                for name, dotted in value.items():
                    if isinstance(dotted, str) and dotted:
                        yield (f"{where}.{name}", dotted)
            else:
                yield from iter_import_paths(value, where)
    elif isinstance(node, Sequence) and not isinstance(node, str | bytes):  # lists and ListConfig
        for i, value in enumerate(node):
            yield from iter_import_paths(value, f"{path}[{i}]")


def _within(module: str, roots: Sequence[str]) -> bool:
    return any(module == root or module.startswith(root + ".") for root in roots)


def _refuse(key: str, dotted: str, why: str) -> TargetNotAllowedError:
    return TargetNotAllowedError(
        f"{key}={dotted!r} is not allowed: {why}; allowed: classes and functions defined in "
        f"{', '.join(m + '.*' for m in allowed_modules())} and a few named library objects "
        f"(add your own package with {EXTRA_TARGETS_ENV}=mypkg)"
    )


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent is not a package, or is not installed
        return False


def _longest_module(dotted: str, root: str, key: str) -> str:
    """The longest prefix of ``dotted`` that is a module, found from ``root`` down (importing only those)."""
    if not _is_module(root):
        raise ComponentNotAvailableError(f"{key}={dotted!r}: package {root} is not installed")
    module = root
    for part in dotted[len(root) :].split(".")[1:]:
        if not _is_module(f"{module}.{part}"):
            break
        module = f"{module}.{part}"
    return module


def resolve_target(dotted: str, key: str = "_target_", *, extra_modules: Sequence[str] = ()) -> Any:
    """The object ``dotted`` names, or a ConfigError naming ``key``; ``extra_modules`` widens the list."""
    if not isinstance(dotted, str) or not all(_IDENTIFIER.fullmatch(p) for p in dotted.split(".")):
        raise TargetNotAllowedError(f"{key}={dotted!r} is not a dotted name (package.module.Name)")
    name = current_target(dotted)
    modules = allowed_modules(extra_modules)
    if name in ALLOWED_OBJECTS:
        module_name, _, attr = name.rpartition(".")
        return getattr(importlib.import_module(module_name), attr)
    roots = [root for root in modules if _within(name, [root])]
    if not roots:
        raise _refuse(key, dotted, "it is outside the allowed packages")
    module_name = _longest_module(name, max(roots, key=len), key)
    obj: Any = importlib.import_module(module_name)
    for part in name[len(module_name) :].split(".")[1:]:
        if not hasattr(obj, part):
            raise ComponentNotAvailableError(
                f"{key}={dotted!r}: that component is not part of this installation "
                f"({module_name} has no {part!r}); choose another option"
            )
        obj = getattr(obj, part)
    is_module = isinstance(obj, types.ModuleType)
    if not is_module and not callable(obj):
        raise ConfigError(f"{key}={dotted!r} names a {type(obj).__name__}, not a class or function")
    defined_in = obj.__name__ if is_module else getattr(obj, "__module__", None)
    if not isinstance(defined_in, str) or not _within(defined_in, modules):
        raise _refuse(key, dotted, f"it resolves to an object defined in {defined_in or 'no module'}")
    if is_module:
        raise ConfigError(f"{key}={dotted!r} names a module, not a class or function")
    return obj


def check_import_paths(node: Any, *, extra_modules: Sequence[str] = ()) -> None:
    """Resolve every import path in a plain or OmegaConf config node; raise on the first refusal."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    plain = OmegaConf.to_container(node, resolve=False) if isinstance(node, DictConfig | ListConfig) else node
    for key, dotted in iter_import_paths(plain):
        resolve_target(dotted, key, extra_modules=extra_modules)


def build(node: Any, /, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` behind the allow-list; constructor errors become a ConfigError."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    upgrade_targets(node)
    targets = []
    for key, dotted in iter_import_paths(node):
        if key.rpartition(".")[2] == "_target_":
            resolve_target(dotted, key)
            targets.append(dotted)
    try:  # Hydra's own execution whitelist: exactly the targets the allow-list has just passed
        return instantiate(node, _convert_="all", _execution_whitelist_=targets, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, ConfigError | RuntimeError) and type(cause).__module__.startswith("townlet"):
            raise cause from None
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc).splitlines()[0]
        target = node.get("_target_", "config node") if isinstance(node, Mapping) else "config node"
        raise ConfigError(f"could not build {target}: {detail}") from exc
