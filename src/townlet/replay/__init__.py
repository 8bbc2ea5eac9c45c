"""Replay datasets, format v1: in-memory data, on-disk shards, validation and iteration (torch-free)."""

from townlet.replay.columns import COLUMN_NAMES, COLUMNS
from townlet.replay.data import ReplayData
from townlet.replay.errors import DatasetError
from townlet.replay.manifest import FORMAT_VERSION, Manifest, read_manifest, stable_hash
from townlet.replay.reading import validate_dataset
from townlet.replay.storage import DEFAULT_SHARD_ROWS, DatasetExistsError, DatasetWriter, write_dataset
from townlet.replay.streaming import StreamingDataset, load_dataset

__all__ = [
    "COLUMNS", "COLUMN_NAMES", "DEFAULT_SHARD_ROWS", "FORMAT_VERSION", "DatasetError", "DatasetExistsError",
    "DatasetWriter", "Manifest", "ReplayData", "StreamingDataset", "load_dataset", "read_manifest",
    "stable_hash", "validate_dataset", "write_dataset",
]  # fmt: skip
