#!/usr/bin/env bash
# Example 4: the sweep that chose the default job's PPO learning rate (docs/anneal.md): the default
# main job (BC -> 20 + 100 PPO iterations, MLP) at lr 5e-4 and 1e-3 (both linear decay), seeds 0-2,
# two jobs at a time. The summary's "mean ± std over seeds" table compares the two rates.
# Usage: multirun_examples/anneal_lr_seeds_joblib.sh [sweep dir]     (about 7 minutes on 2 cores)
set -euo pipefail
townlet-train -m launcher=joblib hydra.launcher.n_jobs=2 \
  strategy.ppo.lr=5e-4,1e-3 seed=0,1,2 \
  ${1:+hydra.sweep.dir="$1"}
