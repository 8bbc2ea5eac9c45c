"""The one place that turns config nodes into objects (``hydra.utils.instantiate``).

Why one wrapper: every ``_target_`` is checked against an allow-list before anything is imported
(Hydra 1.4 will require this), a choice whose code is not built yet fails with a message naming
it instead of an import traceback, and lists/dicts reach constructors as plain Python objects.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

ALLOWED_TARGET_PREFIXES: tuple[str, ...] = (
    "townlet.",
    "torch.optim.",
    "torch.nn.",
    "numpy.",
    "functools.partial",
    "pathlib.",
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


def allowed_prefixes() -> tuple[str, ...]:
    """Built-in prefixes plus comma-separated ones from ``$TOWNLET_ALLOWED_TARGETS`` (your own package)."""
    extra = [p.strip() for p in os.environ.get(EXTRA_TARGETS_ENV, "").split(",") if p.strip()]
    return ALLOWED_TARGET_PREFIXES + tuple(extra)


class ConfigError(ValueError):
    """A configuration that cannot be turned into a run; the message says what to change."""


class TargetNotAllowedError(ConfigError):
    """``_target_`` outside the allow-list."""


class ComponentNotAvailableError(ConfigError):
    """A ``_target_`` names a townlet component that is not part of this installation yet."""


def iter_targets(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(key path, _target_)`` for every target in a (possibly nested) config node."""
    if isinstance(node, Mapping):  # dicts and DictConfig
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "_target_" and isinstance(value, str):
                yield (path or "<root>", value)
            else:
                yield from iter_targets(value, where)
    elif isinstance(node, Sequence) and not isinstance(node, str | bytes):  # lists and ListConfig
        for i, value in enumerate(node):
            yield from iter_targets(value, f"{path}[{i}]")


def check_target(target: str, where: str = "") -> None:
    """Raise if ``target`` is not allowed or its module is missing (without importing it)."""
    label = f"{where}._target_" if where else "_target_"
    target = current_target(target)
    prefixes = allowed_prefixes()
    if not target.startswith(prefixes):
        raise TargetNotAllowedError(
            f"{label}={target!r} is not allowed; targets must start with one of: {', '.join(prefixes)} "
            f"(add your package with {EXTRA_TARGETS_ENV}=mypkg.)"
        )
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):  # longest importable module prefix
        module = ".".join(parts[:cut])
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        rest = parts[cut:]
        is_package = spec.submodule_search_locations is not None
        if is_package and len(rest) > 1 and rest[0][:1].islower():
            break  # ``package.missing_module.Class``: the module is not there
        return
    raise ComponentNotAvailableError(
        f"{label}={target!r}: that component is not part of this installation yet "
        f"(module {'.'.join(parts[:-1])} not found); choose another option"
    )


def build(node: Any, /, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with the allow-list check and ``_convert_="all"``.

    Errors raised by the constructor (bad hyper-parameter values) come back as ``ConfigError``
    naming the target and the original message.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    upgrade_targets(node)
    for where, target in iter_targets(node):
        check_target(target, where)
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, ConfigError | RuntimeError) and type(cause).__module__.startswith("townlet"):
            raise cause from None
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc).splitlines()[0]
        raise ConfigError(f"could not build {_target_of(node)}: {detail}") from exc


def _target_of(node: Any) -> str:
    try:
        return str(node["_target_"])
    except (KeyError, TypeError):
        return "config node"
