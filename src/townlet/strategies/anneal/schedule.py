"""The schedule: validated stages in run order, and what each stage changes in its BC/PPO strategy."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from typing import TYPE_CHECKING, Any

from townlet.config.plan import ppo_plan

if TYPE_CHECKING:
    from townlet.strategies.context import TrainingContext

STAGE_KEYS = ("cycle", "mode", "epochs", "bc_weight")


class AnnealConfigError(ValueError):
    """The anneal schedule or settings are invalid; the message names the key and the fix."""


def plain(node: Any) -> Any:
    """OmegaConf containers → plain Python; anything else unchanged."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a core dependency
        return node
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def is_config_node(node: Any) -> bool:
    """A ``_target_`` node still to be built (Hydra), as opposed to an already-built strategy."""
    data = plain(node)
    return isinstance(data, Mapping) and "_target_" in data


def settings_of(node: Any) -> Any:
    """A stage strategy's settings (a mapping of untyped config values), read from its config node
    or from the built object's attributes."""
    return plain(node) if is_config_node(node) else vars(node)


@dataclass(frozen=True)
class Stage:
    """One schedule entry, validated."""

    cycle: int
    mode: str
    epochs: int
    bc_weight: float

    @classmethod
    def from_any(cls, raw: Any, index: int) -> Stage:
        data = plain(raw)
        if not isinstance(data, Mapping):
            raise AnnealConfigError(f"strategy.schedule[{index}] must be a mapping, got {raw!r}")
        unknown = sorted(set(data) - set(STAGE_KEYS))
        if unknown:
            raise AnnealConfigError(
                f"strategy.schedule[{index}] has unknown key(s) {unknown}; allowed: {', '.join(STAGE_KEYS)}"
            )
        mode = str(data.get("mode", "")).lower()
        if mode not in ("bc", "ppo"):
            raise AnnealConfigError(
                f"strategy.schedule[{index}].mode must be bc or ppo, got {data.get('mode')!r}"
            )
        try:
            cycle, epochs = int(data.get("cycle", index)), int(data.get("epochs", 1))
            weight = float(data.get("bc_weight", 1.0 if mode == "bc" else 0.0))
        except (TypeError, ValueError) as exc:
            raise AnnealConfigError(f"strategy.schedule[{index}]: {exc}") from exc
        if cycle < 0 or epochs < 1:
            raise AnnealConfigError(
                f"strategy.schedule[{index}] needs cycle >= 0 and epochs >= 1 "
                f"(got cycle={cycle}, epochs={epochs})"
            )
        if not (math.isfinite(weight) and 0.0 <= weight <= 1.0):
            raise AnnealConfigError(f"strategy.schedule[{index}].bc_weight must be in [0, 1], got {weight}")
        return cls(cycle=cycle, mode=mode, epochs=epochs, bc_weight=weight)

    def dirname(self, index: int) -> str:
        """``NN_cK_<mode>``: sorts in run order and says what ran there."""
        return f"{index:02d}_c{self.cycle}_{self.mode}"


def parse_schedule(schedule: Sequence[Any] | None) -> list[Stage]:
    """The validated stages in run order: by cycle, keeping the listed order within a cycle
    (a stable sort, so e.g. BC then PPO in cycle 0 stays that way)."""
    entries = [asdict(s) if is_dataclass(s) and not isinstance(s, type) else s for s in plain(schedule) or []]
    stages = [Stage.from_any(s, i) for i, s in enumerate(entries)]
    if not stages:
        raise AnnealConfigError(
            "strategy.schedule is empty; give at least one stage, e.g. [{cycle: 0, mode: bc, epochs: 5}]"
        )
    return sorted(stages, key=lambda s: s.cycle)


def stage_overrides(
    stage: Stage, ppo: Any, context: TrainingContext, *, bc_loss_coef: float, teacher_mix: bool
) -> dict[str, Any]:
    """The keywords a stage overrides in its strategy's config; everything else stays as configured.

    A BC stage also takes PPO's ``gamma``: its value-head warm-up must learn the critic the PPO
    stages will use. A PPO stage's ``epochs`` means update iterations: in rollout mode
    ``total_steps`` is sized to match. Its ``bc_weight`` becomes the kickstarting weight ``bc_coef``
    (and, with ``teacher_mix``, the ``teacher_mix`` share of a PPO strategy that mixes natively).
    """
    overrides: dict[str, Any] = {"epochs": stage.epochs}
    cfg = settings_of(ppo)
    if stage.mode != "ppo":
        if cfg.get("gamma") is not None:
            overrides["gamma"] = float(cfg["gamma"])
        return overrides
    overrides["bc_coef"] = stage.bc_weight * bc_loss_coef
    if teacher_mix:
        overrides["teacher_mix"] = stage.bc_weight
    if str(cfg.get("data_mode", "rollout")) != "replay":
        envs = cfg.get("num_envs") or getattr(context.world, "num_envs", 1)
        agents = cfg.get("num_agents") or getattr(context.world, "num_agents", 1)
        plan = ppo_plan(n_steps=cfg["n_steps"], num_envs=envs, num_agents=agents, total_steps=0)
        overrides["total_steps"] = int(stage.epochs) * int(plan.rows_per_iteration or 0)
    return overrides
