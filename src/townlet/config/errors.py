"""Hydra/OmegaConf composition errors (multi-line reports) as one short message naming the key and fix."""

from __future__ import annotations

import dataclasses
import re

from townlet.packaged import CONF_DIR


def describe_config_error(exc: BaseException) -> str | None:
    """A one-line-ish message for a known configuration error, or None if ``exc`` is not one."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

    if isinstance(exc, MissingConfigException):
        text = str(exc)
        found = re.search(r"Could not (?:find|load) '([^']+)'", text)
        options = re.findall(r"^\t(\S+)$", text.split("Config search path")[0], flags=re.M)
        if found and "/" in found.group(1):
            group, _, option = found.group(1).rpartition("/")
            # a list choice (logger=[jsonl,typo]) is reported without the group's options
            options = options or sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
            listed = ", ".join(options) or "(none)"
            return f"unknown option {option!r} for config group '{group}'; allowed: {listed}"
        return text.split("\n")[0]
    if isinstance(exc, OverrideParseException):
        return f"cannot parse override: {str(exc).splitlines()[0]}"
    if "execution whitelist" in str(exc):
        # Hydra's own node (callbacks, logging) named a callable outside HYDRA_TARGETS: refused unbuilt
        target = re.search(r"Target '([^']+)'", str(exc))
        where = re.search(r"full_key: (\S+)", str(exc))
        return (
            f"{where.group(1) if where else 'the hydra node'}: {target.group(1) if target else 'a target'}"
            " may not be built from a config (Hydra builds only the project's callbacks and the standard"
            " logging handlers); remove it"
        )
    cause = exc.__cause__ if isinstance(exc, ConfigCompositionException) else exc
    if isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", None) or ""
        msg = (getattr(cause, "msg", None) or str(cause)).splitlines()[0]
        if isinstance(cause, ConfigKeyError | AttributeError) and "not in" in msg:
            schema = getattr(cause, "object_type", None)
            fields = dataclasses.fields(schema) if dataclasses.is_dataclass(schema) else ()
            allowed = [f.name for f in fields if not f.name.startswith("_")]
            hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            return f"unknown key '{key}'{hint}"
        if isinstance(cause, ValidationError):
            msg = re.sub(r" of type '\w+'", "", msg)
        return f"{key}: {msg}" if key else msg
    if isinstance(exc, ConfigCompositionException):
        return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return None
