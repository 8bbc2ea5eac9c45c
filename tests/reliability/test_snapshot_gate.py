"""A config snapshot runs nothing and writes nothing: ``townlet-train -cp RUN/.hydra -cn config`` and
``townlet-reproduce RUN`` read its files as untrusted YAML and refuse a hostile ``hydra:`` node, hostile
import paths and YAML bombs with one line and exit 2 before Hydra starts (docs/reliability.md,
"Snapshots")."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from townlet.config.hydra_node import SnapshotRefused
from townlet.config.snapshot import (
    MAX_YAML_BYTES,
    check_run_snapshot,
    check_train_args,
    load_untrusted_yaml,
)
from townlet.runs.record import git_env, git_info

MARKER = "pwned"


@pytest.fixture(scope="module")
def job() -> dict[str, Any]:
    """The composed job of ``strategy=bc``, as a run's ``.hydra/config.yaml`` holds it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from townlet.config.schema import conf_dir, register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir())):
        cfg = compose("train", overrides=["strategy=bc"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    hydra_node: Any = yaml.safe_load(OmegaConf.to_yaml(cfg.hydra))
    config: Any = yaml.safe_load(OmegaConf.to_yaml({k: v for k, v in cfg.items() if k != "hydra"}))
    return {"config": config, "hydra": hydra_node}


def _run_dir(root: Path, job: dict[str, Any], edit: Callable[[dict[str, Any], dict[str, Any]], None]) -> Path:
    """A finished run's directory with one edit to its ``config.yaml`` (``c``) or ``hydra.yaml`` (``h``)."""
    import copy

    config, hydra_node = copy.deepcopy(job["config"]), copy.deepcopy(job["hydra"])
    hydra_node["job"].update(name="train", config_name="train")
    edit(config, hydra_node)
    run = root / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": hydra_node}))
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["strategy=bc"]))
    (run / "result.json").write_text('{"kind": "bc", "accuracy": 0.5}\n')
    (run / "run.json").write_text('{"status": "completed", "run_id": "r1"}\n')
    return run


def _in_config(node: dict[str, Any]) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    """An edit that adds ``node`` as the ``hydra:`` node of ``config.yaml``."""
    return lambda c, h: c.update(hydra=node)


def _marker(root: Path) -> str:
    return str(root / MARKER)


# (edit, phrase); the edit is applied to the snapshot's config.yaml (train) and hydra.yaml (reproduce)
HOSTILE: dict[str, tuple[Callable[[Path], dict[str, Any]], str]] = {
    "callback_copyfile": (
        lambda r: {
            "callbacks": {"x": {"_target_": "shutil.copyfile", "src": "/etc/hostname", "dst": _marker(r)}}
        },
        "hydra.callbacks.x='shutil.copyfile' is not allowed",
    ),
    "callback_townlet_function": (
        lambda r: {"callbacks": {"x": {"_target_": "townlet.runs.atomic.atomic_write_text"}}},
        "is not allowed",
    ),
    "logging_factory": (
        lambda r: {
            "job_logging": {
                "version": 1,
                "handlers": {"h": {"()": "shutil.copyfile", "src": "/etc/hostname", "dst": _marker(r)}},
            }
        },
        "no '()' factories",
    ),
    "logging_file_elsewhere": (
        lambda r: {
            "hydra_logging": {
                "version": 1,
                "handlers": {"f": {"class": "logging.FileHandler", "filename": _marker(r)}},
            }
        },
        "logging.FileHandler at",
    ),
    "logging_custom_class": (
        lambda r: {
            "job_logging": {"version": 1, "handlers": {"h": {"class": "logging.handlers.SocketHandler"}}}
        },
        "is not accepted",
    ),
    "formatter_factory": (
        lambda r: {"job_logging": {"version": 1, "formatters": {"f": {"()": "colorlog.ColoredFormatter"}}}},
        "formatters.f may set only",
    ),
    "env_set": (
        lambda r: {"job": {"env_set": {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.fsmonitor"}}},
        "hydra.job.env_set",
    ),
    "output_subdir_escape": (lambda r: {"output_subdir": "../victim/.hydra"}, "hydra.output_subdir"),
    "run_dir_escape": (lambda r: {"run": {"dir": "outputs/../../victim"}}, "climbs out"),
    "searchpath": (lambda r: {"searchpath": [f"file://{r}"]}, "hydra.searchpath"),
    "launcher": (lambda r: {"launcher": {"_target_": "os.system"}}, "not a launcher or sweeper"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_hydra_node_refused_by_train_gate(case: str, tmp_path: Path, job: dict[str, Any]) -> None:
    make, phrase = HOSTILE[case]
    run = _run_dir(tmp_path, job, _in_config(make(tmp_path)))
    with pytest.raises(SnapshotRefused, match=re.escape(phrase)):
        check_train_args(["-cp", str(run / ".hydra"), "-cn", "config"])


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_hydra_yaml_refused_by_reproduce_gate(case: str, tmp_path: Path, job: dict[str, Any]) -> None:
    make, phrase = HOSTILE[case]
    node = make(tmp_path)

    def edit(c: dict[str, Any], h: dict[str, Any]) -> None:
        for key, value in node.items():
            h[key] = (
                {**h[key], **value} if isinstance(value, dict) and isinstance(h.get(key), dict) else value
            )

    run = _run_dir(tmp_path, job, edit)
    with pytest.raises(SnapshotRefused, match=re.escape(phrase)):
        check_run_snapshot(run)


def test_a_real_snapshot_passes_both_gates(tmp_path: Path, job: dict[str, Any]) -> None:
    run = _run_dir(tmp_path, job, lambda c, h: None)
    check_run_snapshot(run)
    new = f"hydra.run.dir={tmp_path / 'new'}"
    check_train_args(["-cp", str(run / ".hydra"), "-cn", "config", new])
    check_train_args(["-cp", str(run / ".hydra"), "-cn", "hydra", new])  # hydra.yaml as the primary config


@pytest.mark.parametrize(
    ("edit", "phrase"),
    [
        (lambda c, h: h["job"].update(config_name="../snap/evil"), "plain config name"),
        (lambda c, h: h["job"].update(config_name="evil"), "not a config of this package"),
        (
            lambda c, h: c["strategy"].update(_target_="townlet.runs.atomic.atomic_write_text"),
            "not accepted from",
        ),
        (lambda c, h: c["strategy"].update(_target_="townlet.runs.record.os.system"), "defined in posix"),
        (lambda c, h: c["services"].update(implementations={"replay": "code.interact"}), "code.interact"),
        (lambda c, h: c.update(run_name="${oc.env:AWS_SECRET_ACCESS_KEY}"), "resolver ${oc.env:...}"),
        (lambda c, h: h["run"].update(dir="${oc.create:{a: 1}}"), "resolver ${oc.create:...}"),
    ],
)
def test_reproduce_gate_names_and_targets(
    edit: Callable[[dict[str, Any], dict[str, Any]], None], phrase: str, tmp_path: Path, job: dict[str, Any]
) -> None:
    with pytest.raises(SnapshotRefused, match=re.escape(phrase)):
        check_run_snapshot(_run_dir(tmp_path, job, edit))


def test_saved_override_of_hydra_or_function_target_refused(tmp_path: Path, job: dict[str, Any]) -> None:
    run = _run_dir(tmp_path, job, lambda c, h: None)
    for line, phrase in (
        ("hydra.job_logging.handlers.h.filename=/tmp/x", "never set hydra.* keys"),
        ("strategy._target_=townlet.runs.atomic.atomic_write_text", "not accepted from a snapshot"),
        ("seed=${oc.env:HOME}", "resolver ${oc.env:...}"),
    ):
        (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["strategy=bc", line]))
        with pytest.raises(SnapshotRefused, match=re.escape(phrase)):
            check_run_snapshot(run)


def test_defaults_selecting_hydra_groups_and_hydra_group_files_refused(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "main.yaml").write_text("defaults:\n  - override hydra/job_logging: mine\nseed: 1\n")
    with pytest.raises(SnapshotRefused, match="selects Hydra's settings"):
        check_train_args(["-cp", str(folder), "-cn", "main"])
    (folder / "main.yaml").write_text("seed: 1\n")
    (folder / "hydra" / "job_logging").mkdir(parents=True)
    (folder / "hydra" / "job_logging" / "mine.yaml").write_text("version: 1\n")
    with pytest.raises(SnapshotRefused, match="may not replace Hydra's settings"):
        check_train_args(["--config-dir", str(folder)])


def test_yaml_alias_bomb_and_oversized_file_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "config.yaml"
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]" for i in range(9)
    ]
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(SnapshotRefused, match="anchors and aliases"):
        load_untrusted_yaml(bomb)
    big = tmp_path / "big.yaml"
    big.write_text("x: " + "y" * MAX_YAML_BYTES + "\n")
    with pytest.raises(SnapshotRefused, match="larger than"):
        load_untrusted_yaml(big)


def test_packaged_config_dir_is_not_gated(conf_dir: Path) -> None:
    check_train_args(["-cp", str(conf_dir), "-cn", "train"])


# ------------------------------------------------------------------------------------ console


def _tree(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))
    }


def test_train_cli_refuses_hostile_snapshot_runs_and_writes_nothing(
    tmp_path: Path, job: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from townlet.cli.train import main

    make, _ = HOSTILE["callback_copyfile"]
    run = _run_dir(tmp_path, job, _in_config(make(tmp_path)))
    before = _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["townlet-train", "-cp", str(run / ".hydra"), "-cn", "config"])
    with pytest.raises(SystemExit) as stop:
        main()
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2
    assert len(err) == 1 and "hydra.callbacks.x='shutil.copyfile' is not allowed" in err[0]
    assert _tree(tmp_path) == before  # no marker, no outputs/, the snapshot unchanged


def test_reproduce_cli_refuses_hostile_hydra_yaml(
    tmp_path: Path, job: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from townlet.cli.reproduce import main

    run = _run_dir(tmp_path, job, lambda c, h: h["job"].update(config_name="../run/.hydra/config"))
    before = _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main([str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and err[0].startswith("townlet-reproduce: refusing") and "plain config name" in err[0]
    )
    assert _tree(tmp_path) == before


# ---------------------------------------------------------------------------------------- git


def test_git_env_drops_git_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "PATH": "/bin",
        "GIT_CONFIG_COUNT": "1",
        "GIT_DIR": "/x",
        "GIT_EXEC_PATH": "/y",
        "HOME": "/h",
    }.items():
        monkeypatch.setenv(key, value)
    env = git_env()
    assert env["PATH"] == "/bin" and env["HOME"] == "/h"
    assert not {"GIT_CONFIG_COUNT", "GIT_DIR", "GIT_EXEC_PATH"} & set(env)


def test_git_info_runs_no_fsmonitor_or_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / "f").write_text("1")
    subprocess.run([*git, "add", "f"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "c"], cwd=repo, check=True)
    marker = tmp_path / MARKER
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "core.fsmonitor")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", f"touch {marker}; false")
    subprocess.run(["git", "config", "core.fsmonitor", f"touch {marker}; false"], cwd=repo, check=True)
    commit, dirty = git_info(repo)
    assert commit is not None and dirty is False
    assert not marker.exists()


def test_a_snapshot_naming_a_moved_component_passes(tmp_path: Path, job: dict[str, Any]) -> None:
    old = "townlet.policy.training.services.build_default_services"
    check_run_snapshot(_run_dir(tmp_path, job, lambda c, h: c["services"].update(_target_=old)))


def test_a_relative_config_path_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hydra reads a relative ``-cp`` next to its entry module, never the working directory's folder of
    that name: the gate refuses it rather than check one folder while Hydra reads another."""
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SnapshotRefused, match=r"pass an absolute path"):
        check_train_args(["-cp", "run/.hydra", "-cn", "config", "hydra.run.dir=/tmp/x"])


def test_an_outside_primary_config_needs_a_new_run_dir(tmp_path: Path, job: dict[str, Any]) -> None:
    run = _run_dir(tmp_path, job, lambda c, h: None)
    snap = ["-cp", str(run / ".hydra"), "-cn", "config"]
    with pytest.raises(SnapshotRefused, match=r"needs hydra\.run\.dir=NEW_DIR"):
        check_train_args(snap)
    with pytest.raises(SnapshotRefused, match=r"needs hydra\.sweep\.dir=NEW_DIR"):
        check_train_args(["-m", *snap, f"hydra.run.dir={tmp_path / 'new'}"])
    with pytest.raises(SnapshotRefused, match="already exists and is not empty"):
        check_train_args([*snap, f"hydra.run.dir={run}"])
    check_train_args([*snap, f"hydra.run.dir={tmp_path / 'new'}"])
