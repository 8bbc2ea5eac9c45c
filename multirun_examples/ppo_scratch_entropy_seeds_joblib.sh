#!/usr/bin/env bash
# Example 5: the sweep behind strategy=ppo's entropy bonus (docs/ppo.md): PPO from scratch with its
# default config (MLP, 1,048,576 agent-steps, lr 1e-3 linear, gamma 0.995) at entropy_coef 0.01 and
# 0.03, seeds 0-2, two jobs at a time. The summary's "mean ± std over seeds" table compares them.
# Usage: multirun_examples/ppo_scratch_entropy_seeds_joblib.sh [sweep dir]   (about 20 minutes on 2 cores)
set -euo pipefail
townlet-train -m strategy=ppo launcher=joblib hydra.launcher.n_jobs=2 \
  strategy.entropy_coef=0.01,0.03 seed=0,1,2 \
  ${1:+hydra.sweep.dir="$1"}
