#!/usr/bin/env bash
# Example 2: PPO, clip x entropy-bonus grid (4 jobs), two at a time with the joblib launcher
# (one torch thread per job, so 2 jobs fit 2 cores).
# Usage: multirun_examples/ppo_clip_entropy_joblib.sh [sweep dir]
set -euo pipefail
townlet-train -m strategy=ppo launcher=joblib hydra.launcher.n_jobs=2 \
  strategy.clip_param=0.1,0.2 strategy.entropy_coef=0.0,0.01 \
  world.episode_length=100 strategy.total_steps=4096 strategy.n_steps=32 strategy.minibatch_size=256 \
  evaluation.episodes=1 \
  ${1:+hydra.sweep.dir="$1"}
