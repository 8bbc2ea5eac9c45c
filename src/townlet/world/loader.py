"""Read a world scenario YAML into a validated :class:`WorldConfig` outside Hydra (tests, bench, scripts).

OmegaConf merges the file onto the structured schema, so type errors name the field."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from townlet.packaged import CONF_DIR
from townlet.world.config import WorldConfig, WorldConfigError
from townlet.world.layout import build_layout

WORLD_DIR = CONF_DIR / "world"


def available_worlds() -> list[str]:
    return sorted(p.stem for p in WORLD_DIR.glob("*.yaml"))


def load_world_config(name_or_path: str, overrides: Mapping[str, object] | None = None) -> WorldConfig:
    """Load ``conf/world/<name>.yaml`` (or a YAML path), apply ``overrides`` (dotted keys), validate."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = WORLD_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(available_worlds())
        raise WorldConfigError(
            f"world config {name_or_path!r} not found (looked for {path}); available: {known}"
        )
    try:
        raw = OmegaConf.load(path)
        if not isinstance(raw, DictConfig):
            raise WorldConfigError(f"world config {path} must be a mapping of WorldConfig fields")
        raw.pop("defaults", None)
        merged = OmegaConf.merge(OmegaConf.structured(WorldConfig), raw)
        for key, value in (overrides or {}).items():
            OmegaConf.update(merged, key, value, merge=True)
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WorldConfigError(f"world config {path}: field world.{key}: {first}") from None
    assert isinstance(cfg, WorldConfig)
    build_layout(cfg)  # validates
    return cfg


def to_world_config(node: object) -> WorldConfig:
    """Accept a WorldConfig, a DictConfig from Hydra's ``world`` group, or a plain dict."""
    if isinstance(node, WorldConfig):
        return node
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(WorldConfig), node))
    assert isinstance(cfg, WorldConfig)
    return cfg
