"""Paths schema (``conf/paths/default.yaml``): where data, state and run output live, under
``${townlet_root:}`` (:func:`townlet.config.schema.repo_root`) whatever the working directory."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PathsConfig:
    root_dir: str = "${townlet_root:}"
    data_dir: str = "${paths.root_dir}/data"
    state_dir: str = "${paths.root_dir}/state"
    output_root: str = "${paths.root_dir}/outputs"
