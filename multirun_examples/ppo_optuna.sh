#!/usr/bin/env bash
# Example 3: Optuna (TPE) search over PPO hyper-parameters with the ppo_optuna preset
# (lr, clip, entropy bonus, GAE lambda), maximising evaluation.policy.mean_return.
# 6 trials, 2 at a time (joblib), TPE seeded by `seed`.
# Usage: multirun_examples/ppo_optuna.sh [sweep dir]
set -euo pipefail
townlet-train -m hparams_search=ppo_optuna launcher=joblib hydra.launcher.n_jobs=2 \
  hydra.sweeper.n_trials=6 hydra.sweeper.n_jobs=2 hydra.sweeper.sampler.n_startup_trials=4 \
  world.episode_length=100 strategy.total_steps=4096 strategy.n_steps=32 strategy.minibatch_size=256 \
  evaluation.episodes=1 \
  ${1:+hydra.sweep.dir="$1"}
