"""Replay datasets, format v1: the in-memory container, on-disk shards, validation and iteration.

Import surface (torch-free)::

    ReplayData, write_dataset, load_dataset, validate_dataset, DatasetError, StreamingDataset
"""

from townlet.policy.replay.columns import COLUMN_NAMES, COLUMNS
from townlet.policy.replay.data import ReplayData
from townlet.policy.replay.errors import DatasetError
from townlet.policy.replay.manifest import FORMAT_VERSION, Manifest, read_manifest, stable_hash
from townlet.policy.replay.stats import conflict_stats, summarise_batch
from townlet.policy.replay.storage import (
    DEFAULT_SHARD_ROWS,
    DatasetExistsError,
    DatasetWriter,
    load_dataset,
    validate_dataset,
    write_dataset,
)
from townlet.policy.replay.streaming import StreamingDataset

__all__ = [
    "COLUMNS",
    "COLUMN_NAMES",
    "DEFAULT_SHARD_ROWS",
    "FORMAT_VERSION",
    "DatasetError",
    "DatasetExistsError",
    "DatasetWriter",
    "Manifest",
    "ReplayData",
    "StreamingDataset",
    "conflict_stats",
    "load_dataset",
    "read_manifest",
    "stable_hash",
    "summarise_batch",
    "validate_dataset",
    "write_dataset",
]
