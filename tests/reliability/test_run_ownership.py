"""A run directory belongs to one run (docs/reliability.md, "Run directories"): a live run's lock
refuses a second run naming the holder; an interrupted or finished run is continued only by
``resume=true`` with its own overrides; every path a run writes stays inside its dir; each refusal is
one line and leaves the tree byte-identical."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from conftest import support_searchpath
from townlet.config.instantiate import ConfigError
from townlet.runs.interrupt import RunInterrupted, interrupt_message
from townlet.runs.ownership import (
    LOCK_FILE,
    RunDirOwned,
    check_hydra_paths,
    check_run_paths,
    claim_run_dir,
    release_run_dir,
    resume_command,
)

PPO = ["strategy=ppo", "experiment=smoke"]


def _tree(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))
    }


def _stopped_run(root: Path, status: str = "interrupted", overrides: list[str] = PPO) -> Path:
    run = root / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([*overrides, "resume=false"]))
    (run / "run.json").write_text(json.dumps({"status": status, "run_id": "r1"}))
    return run


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    """Start another process that claims a run dir and waits (a live run)."""
    procs: list[subprocess.Popen[str]] = []

    def _start(run: Path) -> subprocess.Popen[str]:
        code = textwrap.dedent(
            f"""
            import sys, time
            from townlet.runs.ownership import claim_run_dir
            claim_run_dir({str(run)!r}, resume=False)
            print("ready", flush=True)
            sys.stdin.read()
            """
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc

    yield _start
    for proc in procs:
        proc.communicate(timeout=30)


def test_live_run_holds_the_dir_and_the_second_is_refused_naming_it(
    tmp_path: Path, holder: Callable[[Path], subprocess.Popen[str]]
) -> None:
    run = tmp_path / "run"
    proc = holder(run)
    before = _tree(tmp_path)
    with pytest.raises(RunDirOwned, match=rf"in use by a live run \(pid {proc.pid}\)"):
        claim_run_dir(run, resume=True)
    assert _tree(tmp_path) == before
    proc.communicate(timeout=30)  # the holder ends: its lock goes with it
    claim_run_dir(run, resume=False)
    release_run_dir(run)
    assert (run / LOCK_FILE).exists()


@pytest.mark.parametrize("status", ["interrupted", "failed", "running"])
def test_a_stopped_run_is_refused_without_resume_with_its_own_command(tmp_path: Path, status: str) -> None:
    run = _stopped_run(tmp_path, status)
    before = _tree(tmp_path)
    with pytest.raises(RunDirOwned) as refused:
        claim_run_dir(run, resume=False, overrides=PPO)
    message = str(refused.value)
    assert f"run.json says '{status}'" in message
    assert f"townlet-train hydra.run.dir={run} strategy=ppo experiment=smoke resume=true" in message
    assert "\n" not in message and _tree(tmp_path) == before


@pytest.mark.parametrize("record", ["run.json", "result.json"])
def test_resume_of_records_from_a_newer_version_is_refused(tmp_path: Path, record: str) -> None:
    run = _stopped_run(tmp_path)
    (run / record).write_text(json.dumps({"status": "interrupted", "schema_version": "2.1.0", "extra": 1}))
    before = _tree(tmp_path)
    with pytest.raises(RunDirOwned, match=rf"{record} was written by a newer townlet-train \(schema 2\.1\.0"):
        claim_run_dir(run, resume=True, overrides=PPO)
    assert _tree(tmp_path) == before
    (run / record).write_text(json.dumps({"status": "interrupted", "schema_version": "1.4.0"}))
    claim_run_dir(run, resume=True, overrides=PPO)  # an older record is the DTOs' to read
    release_run_dir(run)


def test_resume_with_other_overrides_is_refused_listing_the_keys(tmp_path: Path) -> None:
    run = _stopped_run(tmp_path)
    before = _tree(tmp_path)
    with pytest.raises(RunDirOwned) as refused:
        claim_run_dir(run, resume=True, overrides=["strategy=bc", "seed=3", "resume=true"])
    message = str(refused.value)
    assert "strategy (run: ppo, given: bc)" in message and "seed (run: -, given: 3)" in message
    assert "experiment (run: smoke, given: -)" in message
    assert _tree(tmp_path) == before
    claim_run_dir(run, resume=True, overrides=[*PPO, "resume=true"])  # its own overrides: continued
    release_run_dir(run)


def test_interrupt_message_is_a_pasteable_command_with_the_run_overrides(tmp_path: Path) -> None:
    run = _stopped_run(tmp_path, overrides=[*PPO, "world.name=queue conflict"])
    line = interrupt_message(RunInterrupted(2, run, checkpointed=True))
    command = line.split("continue with: ", 1)[1]
    assert command == f"{resume_command(run)}"
    assert command.endswith("strategy=ppo experiment=smoke 'world.name=queue conflict' resume=true")


@pytest.mark.parametrize(
    ("cfg", "phrase"),
    [
        ({"run_name": "../../escape"}, "run_name='../../escape' must be a plain name"),
        ({"run_name": "/abs"}, "must be a plain name"),
        (
            {"run_name": "ok", "logger": {"jsonl": {"filename": "../victim/result.json"}}},
            "logger.jsonl.filename",
        ),
        ({"run_name": "ok", "logger": {"csv": {"filename": "/tmp/x.csv"}}}, "logger.csv.filename"),
    ],
)
def test_run_paths_outside_the_run_dir_are_refused(cfg: dict[str, object], phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase):
        check_run_paths(cfg)


def test_hydra_outputs_stay_inside_the_run_dir() -> None:
    check_hydra_paths(
        {
            "output_subdir": ".hydra",
            "job_logging": {"handlers": {"file": {"filename": "${hydra.runtime.output_dir}/train.log"}}},
        }
    )
    with pytest.raises(ValueError, match=re.escape("hydra.output_subdir='../victim/.hydra'")):
        check_hydra_paths({"output_subdir": "../victim/.hydra"})
    with pytest.raises(ValueError, match=re.escape("job_logging.handlers.file.filename")):
        check_hydra_paths({"job_logging": {"handlers": {"file": {"filename": "/tmp/victim/train.log"}}}})


# ------------------------------------------------------------------------------------ console


def _echo(run_dir: Path, *extra: str) -> list[str]:
    return [support_searchpath(), "strategy=echo", f"hydra.run.dir={run_dir}", "objective=accuracy", *extra]


def test_cli_resume_with_another_config_changes_nothing(run_cli, tmp_path: Path) -> None:
    run = tmp_path / "done"
    assert run_cli(*_echo(run, "seed=1")).returncode == 0
    before = _tree(tmp_path)
    proc = run_cli(*_echo(run, "seed=2", "resume=true"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1
    assert "seed (run: 1, given: 2)" in lines[0]
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("name", ["metrics.jsonl", "checkpoints", "run.json"])
def test_cli_refuses_a_run_dir_whose_links_lead_out_and_writes_nothing(
    run_cli, tmp_path: Path, name: str
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "result.json").write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    (run / name).symlink_to(victim if name == "checkpoints" else victim / "result.json")
    (run / "notes.txt").write_text("mine")
    (run / "inside").symlink_to(run / "notes.txt")  # a link within the dir is its own business
    proc = run_cli(*_echo(run))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1
    assert f"{run / name} is a symbolic link to" in lines[0] and "outside the run directory" in lines[0]
    assert (victim / "result.json").read_text() == "precious"
    assert sorted(victim.iterdir()) == [victim / "result.json"]
    assert sorted(p.name for p in run.iterdir()) == sorted(["inside", "notes.txt", name])


def test_cli_resume_compares_the_whole_saved_config(run_cli, tmp_path: Path) -> None:
    """Same overrides, but the saved config holds another value (another default or primary config):
    refused, nothing changed. A key the snapshot lacks (an older schema) is let through."""
    run = tmp_path / "done"
    assert run_cli(*_echo(run, "seed=1")).returncode == 0
    saved = run / ".hydra" / "config.yaml"
    config = yaml.safe_load(saved.read_text())
    config["logger"]["log_frequency"] = int(config["logger"]["log_frequency"]) + 7
    saved.write_text(yaml.safe_dump(config))
    before = _tree(tmp_path)
    proc = run_cli(*_echo(run, "seed=1", "resume=true"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    now = config["logger"]["log_frequency"] - 7
    assert f"logger.log_frequency (run: {now + 7}, now: {now})" in lines[0]
    assert _tree(tmp_path) == before
    config["logger"]["log_frequency"] = now
    del config["logger"]["progress_every_sec"]  # as a run saved before the schema had the key
    saved.write_text(yaml.safe_dump(config))
    proc = run_cli(*_echo(run, "seed=1", "resume=true"))
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize(
    ("extra", "phrase"),
    [
        ("run_name=../../escape", "run_name="),
        ("logger.jsonl.filename=../victim/result.json", "logger.jsonl.filename"),
        ("hydra.output_subdir=../victim/.hydra", "hydra.output_subdir"),
        ("hydra.job_logging.handlers.file.filename=../victim/train.log", "handlers.file.filename"),
    ],
)
def test_cli_refuses_paths_that_escape_and_writes_nothing(
    run_cli, tmp_path: Path, extra: str, phrase: str
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "result.json").write_text("{}")
    before = _tree(tmp_path)
    proc = run_cli(*_echo(tmp_path / "run", extra))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and phrase in lines[0], proc.stderr
    assert _tree(tmp_path) == before


@pytest.mark.parametrize(
    "extra",
    [
        ["logger=tensorboard", "logger.tensorboard.dirname=../victim/tb"],
        ["logger=tensorboard", "logger.tensorboard.dirname={victim}/tb"],
    ],
    ids=["relative", "absolute"],
)
def test_cli_refuses_a_logger_folder_outside_the_run_dir(run_cli, tmp_path: Path, extra: list[str]) -> None:
    """A logger's folder, like its file, stays inside the run dir (TensorBoard's ``dirname``)."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "run.json").write_text('{"status": "completed", "run_id": "v"}')
    before = _tree(tmp_path)
    proc = run_cli(*_echo(tmp_path / "run", *(e.format(victim=victim) for e in extra)))
    lines = proc.stderr.strip().splitlines()
    key = extra[-1].partition("=")[0]
    assert proc.returncode == 2 and len(lines) == 1 and key in lines[0], proc.stderr[-2000:]
    assert _tree(tmp_path) == before


def test_cli_second_run_into_a_live_dir_is_refused(
    run_cli, tmp_path: Path, holder: Callable[[Path], subprocess.Popen[str]]
) -> None:
    run = tmp_path / "live"
    proc = holder(run)
    before = _tree(tmp_path)
    second = run_cli(*_echo(run))
    assert second.returncode == 1 and f"in use by a live run (pid {proc.pid})" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    assert _tree(tmp_path) == before


def test_cli_sweep_refuses_a_job_whose_run_name_escapes(run_cli, tmp_path: Path) -> None:
    before = _tree(tmp_path)
    args = [support_searchpath(), "strategy=echo", "objective=accuracy", f"paths.output_root={tmp_path}"]
    proc = run_cli("-m", *args, "run_name=ok,../../escape")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "sweep job #1" in lines[0] and "run_name=" in lines[0]
    assert _tree(tmp_path) == before


def test_cli_hydra_rerun_continues_the_run_with_its_own_overrides(run_cli, tmp_path: Path) -> None:
    """``hydra.run.dir=RUN resume=true`` alone is compared (and refused); Hydra's own
    ``--experimental-rerun RUN resume=true`` continues the run with its saved overrides."""
    run = tmp_path / "run"
    tiny = ["strategy=bc", "strategy.epochs=1", "world.num_envs=2", "world.episode_length=32"]
    made = run_cli(*tiny, "dataset.ticks=64", "evaluation.episodes=1", "seed=5", f"hydra.run.dir={run}",
                   f"paths.data_dir={tmp_path / 'data'}")  # fmt: skip
    assert made.returncode == 0, made.stderr[-2000:]
    short = run_cli(f"hydra.run.dir={run}", "resume=true")
    assert short.returncode == 1 and "these differ" in short.stderr and "seed (run: 5" in short.stderr
    again = run_cli("--experimental-rerun", str(run), "resume=true")
    assert again.returncode == 0, again.stderr[-2000:]
    record = json.loads((run / "run.json").read_text())
    assert record["resumed"] is True and record["seed"] == 5
    assert {"strategy=bc", "seed=5"} <= set(record["overrides"])


def test_cli_hydra_rerun_of_an_edited_hydra_yaml_is_refused(run_cli, tmp_path: Path) -> None:
    run = _stopped_run(tmp_path)
    hydra_yaml = run / ".hydra" / "hydra.yaml"
    hydra_yaml.write_text("hydra:\n  overrides:\n    hydra: ['hydra.job.env_set.LD_PRELOAD=/tmp/x.so']\n")
    before = _tree(tmp_path)
    proc = run_cli("--experimental-rerun", str(run), "resume=true")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "hydra.job.env_set.LD_PRELOAD" in proc.stderr and _tree(tmp_path) == before


def test_an_unreadable_overrides_file_is_refused_on_resume_and_left_out_of_hints(tmp_path: Path) -> None:
    run = _stopped_run(tmp_path)
    (run / ".hydra" / "overrides.yaml").write_text("- &a strategy=ppo\n- *a\n")
    assert resume_command(run) == f"townlet-train hydra.run.dir={run} resume=true"
    with pytest.raises(ConfigError, match="anchors and aliases"):
        claim_run_dir(run, resume=True, overrides=["resume=true"])
