#!/usr/bin/env bash
# Example 1: behaviour cloning, seed x learning-rate grid (6 jobs, basic launcher, one after another).
# The summary gets a "mean ± std over seeds" table per learning rate.
# Usage: multirun_examples/bc_seed_lr_grid.sh [sweep dir]   (default: outputs/multiruns/<date>/<time>_train)
set -euo pipefail
townlet-train -m strategy=bc \
  seed=0,1 strategy.lr=3e-4,1e-3,3e-3 \
  world.episode_length=100 dataset.ticks=200 strategy.epochs=2 evaluation.episodes=1 \
  objective=val_accuracy \
  ${1:+hydra.sweep.dir="$1"}
