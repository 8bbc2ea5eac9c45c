"""A format v1 dataset as a Minari dataset (offline RL): one episode per agent life, cut after each faint
or time limit. A Minari episode of L steps holds L + 1 observations; format v1 stores the last one only
after a faint, elsewhere it is repeated and ``final_observation_exact`` is False. Minari (an optional extra,
imported only here) finds datasets through ``MINARI_DATASETS_PATH``: the export writes to a private
directory beside the target, then renames it into place, so a failed export leaves nothing behind."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from townlet.replay.data import ReplayData
from townlet.replay.manifest import read_manifest
from townlet.replay.reading import load_replay_data

ROOT_ENV = "MINARI_DATASETS_PATH"
NAMESPACE_METADATA = "namespace_metadata.json"  # what marks a Minari namespace directory
# metadata Minari asks for that a replay dataset cannot supply (there is no registered Gymnasium id)
_UNKNOWABLE = ("`author`", "`author_email`", "`code_permalink`", "`eval_env`", "env_spec is None")


class ExportError(ValueError):
    """The export cannot start: bad dataset id, existing target, or Minari not installed."""


@dataclass(frozen=True)
class MinariExport:
    dataset_id: str
    path: Path  # the dataset's directory (holds data/)
    episodes: int
    steps: int


def agent_episodes(data: ReplayData, column: int) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(episode arrays, episode metadata) for one agent column, split after each done row."""
    terminated, truncated = data.terminated[:, column], data.truncated[:, column]
    ends = np.flatnonzero(terminated | truncated)
    if not ends.size or ends[-1] != data.num_ticks - 1:
        ends = np.append(ends, data.num_ticks - 1)  # cut by the capture's end
    start = 0
    for end in ends.tolist():
        rows = np.arange(start, end + 1)
        exact = bool(terminated[end] and not truncated[end] and end + 1 < data.num_ticks)
        obs_rows = np.append(rows, end + 1 if exact else end)  # L + 1 observations
        done_t, done_tr = terminated[rows].copy(), truncated[rows].copy()
        done_tr[-1] |= not done_t[-1]  # a cut without a flag counts as a truncation
        arrays = {
            "observations": {"map": data.maps[obs_rows, column], "features": data.features[obs_rows, column]},
            "actions": data.actions[rows, column],
            "rewards": data.rewards[rows, column],
            "terminations": done_t,
            "truncations": done_tr,
            "infos": {"action_mask": data.action_mask[obs_rows, column]},
        }
        meta = {
            "town": int(data.env_id[start, column]),
            "agent": int(data.agent_id[start, column]),
            "town_episode": int(data.episode_id[start, column]),
            "first_row": start,  # tick index into the replay dataset
            "final_observation_exact": exact,
        }
        yield arrays, meta
        start = end + 1


@contextlib.contextmanager
def _datasets_root(root: Path) -> Iterator[None]:
    """Minari reads its root only from the environment: set it for the duration of one call."""
    before = os.environ.get(ROOT_ENV)
    os.environ[ROOT_ENV] = str(root)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ROOT_ENV, None)
        else:
            os.environ[ROOT_ENV] = before


def _publish(staging: Path, root: Path, dataset_id: str) -> Path:
    """Move a dataset built under ``staging`` to ``root``, creating its namespaces there if needed."""
    parts = dataset_id.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        level = Path(*parts[:depth])
        (root / level).mkdir(parents=True, exist_ok=True)
        if not (root / level / NAMESPACE_METADATA).exists():
            shutil.copyfile(staging / level / NAMESPACE_METADATA, root / level / NAMESPACE_METADATA)
    target = root / dataset_id
    os.rename(staging / dataset_id, target)  # fails rather than merging if the target appeared meanwhile
    return target


def export_minari(
    source: str | Path, *, dataset_id: str | None = None, root: Path | None = None
) -> MinariExport:
    """Write ``source`` as the Minari dataset ``dataset_id`` under ``root``; on DatasetError or
    ExportError nothing is written."""
    try:
        import h5py  # noqa: F401 - Minari's hdf5 storage needs it, found only when writing
        import minari
    except ImportError:
        raise ExportError("Minari is not installed (pip install 'townlet-train[minari]')") from None
    from gymnasium import spaces  # imported only when an export runs: `townlet-dataset inspect` stays light
    from minari.data_collector import EpisodeBuffer
    from minari.dataset.minari_dataset import parse_dataset_id

    from townlet.world.gym_vector import obs_spaces

    manifest = read_manifest(source)
    world, behaviour = manifest.raw.get("world") or {}, manifest.raw.get("behaviour") or {}
    if not dataset_id:  # townlet/<world>-<behaviour>-v0 from the manifest's provenance
        name = re.sub(r"[^-\w]+", "_", f"{world.get('name') or 'town'}-{behaviour.get('name') or 'replay'}")
        dataset_id = f"townlet/{name}-v0"
    # where minari.load_dataset looks; resolved, as Minari mis-joins relative roots
    root = Path(root or os.environ.get(ROOT_ENV) or Path.home() / ".minari" / "datasets")
    root = root.expanduser().resolve()
    try:
        parse_dataset_id(dataset_id)
    except ValueError:
        raise ExportError(
            f"malformed Minari dataset id {dataset_id!r} (use [namespace/]name-v<N>, e.g. townlet/town-v0)"
        ) from None
    if (root / dataset_id).exists():
        raise ExportError(f"{root / dataset_id} already exists (choose another --dataset-id or --out)")
    data = load_replay_data(manifest)  # every shard checked before anything is written
    if not data.num_transitions:
        raise ExportError(f"{manifest.root} holds no transitions: there is nothing to export")
    observation_space = spaces.Dict(obs_spaces(data.spec, 255))  # the stored map window and features
    action_space = spaces.Discrete(data.spec.num_actions)
    algorithm = f"townlet {behaviour.get('name')} (epsilon={behaviour.get('epsilon')})"
    description = (
        f"Townlet replay dataset {Path(source).name} (world {world.get('name')}, config hash "
        f"{world.get('hash')}, seed {manifest.raw.get('seed')}): "
        f"{manifest.ticks} ticks x {manifest.agents} agents, one Minari episode per agent life or "
        "episode; observations are the egocentric map window and the feature vector, "
        "infos['action_mask'] marks the allowed actions."
    )
    made_root = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".townlet-minari-", dir=root))
    path = None
    try:
        with _datasets_root(staging), warnings.catch_warnings():
            for topic in _UNKNOWABLE:
                warnings.filterwarnings("ignore", message=re.escape(topic), category=UserWarning)
            dataset, metadata = None, []
            for column in range(data.num_agents):  # one agent's buffers in memory at a time
                buffers = []
                for arrays, meta in agent_episodes(data, column):
                    buffers.append(EpisodeBuffer(**arrays))
                    metadata.append(meta)
                if dataset is None:
                    dataset = minari.create_dataset_from_buffers(
                        dataset_id,
                        buffers,
                        observation_space=observation_space,
                        action_space=action_space,
                        algorithm_name=algorithm,
                        description=description,
                        data_format="hdf5",
                        jpeg_encoding=False,  # lossless: the map window is stored as captured
                    )
                else:
                    dataset.update_dataset_from_buffer(buffers)
            assert dataset is not None  # at least one agent (checked above)
            dataset.storage.update_episode_metadata(metadata)
            episodes, steps = dataset.total_episodes, dataset.total_steps
        path = _publish(staging, root, dataset_id)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if path is None and made_root:
            root.rmdir()
    return MinariExport(dataset_id=dataset_id, path=path, episodes=episodes, steps=steps)


# ------------------------------------------------------------------ townlet-dataset export-minari
class Subparsers(Protocol):
    """What ``ArgumentParser.add_subparsers()`` returns, as far as a subcommand needs it."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


def register(sub: Subparsers) -> None:
    """Add ``export-minari`` to the ``townlet-dataset`` sub-parsers (``sub``)."""
    cmd = sub.add_parser("export-minari", help="write a Minari dataset (offline RL) from a replay dataset")
    cmd.add_argument("path", help="replay dataset directory (format v1, or its manifest.json)")
    cmd.add_argument(
        "--out",
        type=Path,
        help=f"Minari datasets root to write under (default ${ROOT_ENV}, else ~/.minari/datasets)",
    )
    cmd.add_argument(
        "--dataset-id", help="Minari id, [namespace/]name-v<N> (default townlet/<world>-<behaviour>-v0)"
    )
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Exit 0 after writing; 2 with one line on stderr (and nothing written) when it cannot."""
    try:
        done = export_minari(args.path, dataset_id=args.dataset_id, root=args.out)
    except (ValueError, OSError) as exc:  # DatasetError, ExportError, or Minari refusing
        print(f"townlet-dataset export-minari: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote Minari dataset {done.dataset_id}: {done.episodes} episodes, {done.steps} steps in {done.path}"
    )
    return 0
