"""Run-directory plumbing: atomic writes, metrics cadence/rotation, seeding, devices, objective."""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import numpy as np
import pytest

from townlet.runs.atomic import atomic_write_json, atomic_write_text, finite_or_none, json_safe
from townlet.runs.device import DeviceUnavailableError, resolve_device
from townlet.runs.metrics import MetricsWriter, metrics_files, read_metrics
from townlet.runs.objective import ObjectiveError, objective_value
from townlet.runs.rundir import RunDir, RunDirInUseError
from townlet.runs.seeding import THREAD_VARS, derive_seed, seed_everything, thread_env


def test_atomic_json_is_strict_and_leaves_no_temp(tmp_path: Path) -> None:
    target = atomic_write_json(
        tmp_path / "a" / "x.json", {"v": math.nan, "w": [1.0, math.inf], "n": np.float32(2)}
    )
    assert json.loads(target.read_text()) == {"v": None, "w": [1.0, None], "n": 2.0}
    atomic_write_text(target, "second")
    assert target.read_text() == "second" and sorted(p.name for p in target.parent.iterdir()) == ["x.json"]


def test_json_safe_default_stringifies_what_plain_json_cannot_hold() -> None:
    value = {"p": Path("/d"), "a": np.arange(2), "s": np.int64(3), "x": (math.nan, True, None)}
    assert json_safe(value, default=str) == {"p": "/d", "a": "[0 1]", "s": 3, "x": [None, True, None]}
    assert json_safe(value)["p"] == Path("/d")  # left for dumps_json's converter


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1, 1.0),
        ("2.5", 2.5),
        (np.float32(0.5), 0.5),
        (math.nan, None),
        (math.inf, None),
        (True, None),
        (None, None),
        ("abc", None),
        ([1], None),
    ],
)
def test_finite_or_none(raw: object, expected: float | None) -> None:
    assert finite_or_none(raw) == expected


def test_metrics_rotation_matches_upstream(tmp_path: Path) -> None:
    path = tmp_path / "ppo.jsonl"
    with MetricsWriter(path, log_frequency=1, max_log_entries=1) as writer:
        for epoch in (1, 2, 3):
            writer.log({"epoch": epoch})
    assert [p.name for p in metrics_files(path)] == ["ppo.jsonl", "ppo.jsonl.1", "ppo.jsonl.2"]
    assert [r["epoch"] for r in read_metrics(path)] == [1, 2, 3]


def test_metrics_frequency_and_nan(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    with MetricsWriter(path, log_frequency=2) as writer:
        written = [writer.log({"epoch": e, "loss": math.nan}) for e in (1, 2, 3)]
    assert written == [False, True, False]
    rows = list(read_metrics(path))
    assert [{k: v for k, v in r.items() if k != "wall_sec"} for r in rows] == [{"epoch": 2, "loss": None}]
    assert rows[0]["wall_sec"] >= 0.0  # seconds since the writer opened, on every line
    with pytest.raises(ValueError, match="log_frequency"):
        MetricsWriter(path, log_frequency=0)


def test_rundir_refuses_finished_dir(tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "r").prepare()
    assert rd.checkpoints.is_dir()
    rd.result_path.write_text("{}")
    with pytest.raises(RunDirInUseError, match="resume=true"):
        RunDir(rd.path).prepare()
    assert RunDir(rd.path).prepare(resume=True).path == rd.path


def test_seed_everything_is_reproducible_without_importing_torch() -> None:
    report = seed_everything(5, with_torch=False)
    first = (random.random(), np.random.rand())
    seed_everything(5, with_torch=False)
    assert (random.random(), np.random.rand()) == first
    assert not report.torch_seeded
    assert derive_seed(5, "eval") == derive_seed(5, "eval") != derive_seed(6, "eval")


def test_device_resolution() -> None:
    assert resolve_device({"type": "cpu"}) == "cpu"
    assert resolve_device("cpu") == "cpu"
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        assert resolve_device({"type": "auto"}) == "cpu"
        with pytest.raises(DeviceUnavailableError, match="device=auto"):
            resolve_device({"type": "cuda"})


def test_objective_lookup() -> None:
    data = {"kind": "bc", "accuracy": 0.8, "evaluation": None, "val_loss": None}
    assert objective_value(data, "accuracy") == 0.8
    assert objective_value(data, "evaluation.policy.mean_return", "max") == -math.inf
    assert objective_value(data, "val_loss", "min") == math.inf
    with pytest.raises(ObjectiveError, match="objective="):
        objective_value(data, "nope")


def test_thread_env_pins_every_pool() -> None:
    env = thread_env(2)
    assert env == dict.fromkeys(THREAD_VARS, "2")
    with pytest.raises(ValueError, match="num_threads"):
        thread_env(0)


def test_auto_threads_follow_an_explicit_pin_else_the_usable_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from townlet.config.schema.device import resolve_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads("auto") == 3 and resolve_threads(5) == 5
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert resolve_threads("auto") == len(os.sched_getaffinity(0))
    for bad in (0, -1, "many", True):
        with pytest.raises(ValueError, match="num_threads"):
            resolve_threads(bad)
