"""Metric names: one registry, so a metric keeps one name from where it is measured to ``metrics.jsonl``,
every logger and the result DTO."""

from __future__ import annotations

# -- labels: what a metrics line is about, not what was measured --------------------------------
#: The training unit a line closes: a PPO iteration or a BC epoch.
STEP_KEYS: tuple[str, ...] = ("iteration", "epoch")
#: Seconds since the run's metrics writer opened, stamped on every line by the fan-out.
WALL_KEY = "wall_sec"
#: Set by a composite strategy on the lines of each of its parts: the part's position (0-based) and
#: its name, so loggers keep parts apart (``stage<index>_<name>/`` tags, one curve per part).
STAGE_INDEX_KEY = "stage_index"
STAGE_KEY = "stage"
LABEL_KEYS: frozenset[str] = frozenset({*STEP_KEYS, WALL_KEY, STAGE_INDEX_KEY, STAGE_KEY})

# -- what a run is judged by --------------------------------------------------------------------
#: Agent-steps a PPO run (or part) has collected so far: the x axis of return curves.
AGENT_STEPS_KEY = "env_steps"
#: Mean return of the agent-episodes a rollout completed (training) and of a periodic evaluation.
TRAIN_RETURN_KEY = "episode_return_mean"
EVAL_RETURN_KEY = "eval_return_mean"
#: The strategy that logged a line (``"bc"``, ``"ppo"``): a curve's name outside a composite.
STRATEGY_KEY = "strategy"
#: Transitions a PPO run has trained on so far (rows x epochs run).
STEPS_KEY = "steps"
#: A BC epoch's figures; a PPO update's loss and diagnostics.
TRAIN_LOSS_KEY = "train_loss"
VAL_LOSS_KEY = "val_loss"
VAL_ACCURACY_KEY = "val_accuracy"
LOSS_TOTAL_KEY = "loss_total"
KL_KEY = "kl_divergence"
CLIP_FRACTION_KEY = "clip_fraction"
PPO_CURVE_KEYS: tuple[str, ...] = (
    "loss_policy", "loss_value", "loss_entropy", "loss_bc", KL_KEY, CLIP_FRACTION_KEY, "explained_variance",
)  # fmt: skip
#: Throughput: PPO's agent-steps and BC's samples per second.
SPS_KEY = "sps"
SAMPLES_PER_SEC_KEY = "samples_per_sec"
#: Result fields (dotted) a sweep summary shows per job, and the objectives a refused key suggests.
POLICY_RETURN = "evaluation.policy.mean_return"
SWEEP_METRICS: tuple[str, ...] = (
    "accuracy", VAL_ACCURACY_KEY, "loss", VAL_LOSS_KEY, LOSS_TOTAL_KEY, KL_KEY, CLIP_FRACTION_KEY,
    POLICY_RETURN, "evaluation.policy.faint_rate", "evaluation.policy.scripted_agreement",
)  # fmt: skip
OBJECTIVES: tuple[str, ...] = (POLICY_RETURN, VAL_ACCURACY_KEY, "accuracy", TRAIN_RETURN_KEY, LOSS_TOTAL_KEY)
#: The periodic evaluation's keys on a training line (``evaluation.every``).
EVAL_KEYS: tuple[str, ...] = ("eval_return_mean", "eval_return_std", "eval_faint_rate", "eval_mean_needs")
#: Optimisation figures, grouped ``losses/`` by the dashboards (TensorBoard, W&B); ``EVAL_KEYS`` go
#: to ``eval/`` and every other measurement to ``charts/``.
LOSS_GROUP_KEYS: frozenset[str] = frozenset({TRAIN_LOSS_KEY, VAL_LOSS_KEY, LOSS_TOTAL_KEY, *PPO_CURVE_KEYS})

# -- the end of a run, as the trackers record it -------------------------------------------------
#: The final evaluation table's mean returns (result fields): the trained policy, the scripted
#: teacher and the random policy on the same seeds.
FINAL_RETURNS: tuple[str, ...] = (
    POLICY_RETURN, "evaluation.scripted.mean_return", "evaluation.random.mean_return",
)  # fmt: skip
#: The run's objective value (its key is the config's ``objective``), for sorting runs by result.
OBJECTIVE_METRIC = "objective"
#: The x axis the dashboards share: agent-steps so far (epochs where a run collects none).
GLOBAL_STEP_KEY = "global_step"

# -- what PPO's metrics line and result carry ---------------------------------------------------
#: The update summary's keys, as ``ppo_update`` names them and in the line's telemetry 1.2 order.
PPO_COUNT_KEYS: tuple[str, ...] = ("updates", "transitions")
PPO_LOSS_KEYS: tuple[str, ...] = ("loss_policy", "loss_value", "loss_entropy", "loss_total", "clip_fraction")
PPO_KL_KEYS: tuple[str, ...] = ("grad_norm", "kl_divergence", "kl_k1", "loss_bc")
PPO_HEALTH_KEYS: tuple[str, ...] = (
    "adv_zero_std_batches", "adv_min_std", "clip_triggered_minibatches", "clip_fraction_max",
)  # fmt: skip
PPO_SPREAD_KEYS: tuple[str, ...] = (
    "batch_entropy_mean", "batch_entropy_std", "grad_norm_max", "kl_divergence_max",
)  # fmt: skip
PPO_SUMMARY_KEYS: tuple[str, ...] = (
    *PPO_COUNT_KEYS, *PPO_LOSS_KEYS, *PPO_KL_KEYS, *PPO_HEALTH_KEYS, *PPO_SPREAD_KEYS, "epochs_run",
)  # fmt: skip
#: Line keys the PPO result takes under the same name (with the event counters): those every line has
PPO_RESULT_KEYS: tuple[str, ...] = (
    "epoch", *PPO_COUNT_KEYS, *PPO_LOSS_KEYS, "adv_mean", "adv_std", "grad_norm", "kl_divergence", "lr",
    STEPS_KEY, "telemetry_version", *PPO_HEALTH_KEYS, *PPO_SPREAD_KEYS, "explained_variance",
    "epoch_duration_sec", "data_mode", "cycle_id", "reward_advantage_corr", "rollout_ticks",
    "log_stream_offset",
)  # fmt: skip
#: ... and those only a line with a rollout has (replay collects no episodes).
PPO_ROLLOUT_RESULT_KEYS: tuple[str, ...] = (TRAIN_RETURN_KEY,)
