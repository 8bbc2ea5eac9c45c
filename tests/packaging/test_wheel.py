"""The package works as a real, non-editable install: configs ship inside the wheel, and outputs land in
the current directory when neither ``TOWNLET_ROOT`` nor a source checkout says otherwise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from townlet.packaged import CONF_DIR

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "townlet"
TOOLS = REPO / "src" / "townlet_tools"
PLUGINS = REPO / "src" / "hydra_plugins"


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd[:4]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_wheel_installs_elsewhere_and_trains_from_an_empty_directory(tmp_path: Path) -> None:
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources it builds.
    source = tmp_path / "source"
    for package in (PACKAGE, TOOLS, PLUGINS):
        shutil.copytree(package, source / "src" / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(dist), "-q"], tmp_path)
    (wheel,) = dist.glob("townlet_train-*.whl")

    shipped = set(zipfile.ZipFile(wheel).namelist())
    conf_files = {f"townlet/{p.relative_to(PACKAGE).as_posix()}" for p in CONF_DIR.rglob("*") if p.is_file()}
    assert conf_files and conf_files <= shipped, f"not in the wheel: {sorted(conf_files - shipped)}"
    assert "townlet/py.typed" in shipped
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in shipped)
    (metadata,) = (n for n in shipped if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: MIT" in zipfile.ZipFile(wheel).read(metadata).decode()
    assert {"townlet_tools/bench/__init__.py", "townlet_tools/legacy/command.py"} <= shipped
    plugins = {f"hydra_plugins/{p.relative_to(PLUGINS).as_posix()}" for p in PLUGINS.rglob("*.py")}
    assert plugins and plugins <= shipped, f"Hydra plugins not in the wheel: {sorted(plugins - shipped)}"

    site = tmp_path / "site"
    _run([*pip, "install", "--no-deps", "--target", str(site), str(wheel), "-q"], tmp_path)
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("TOWNLET_ROOT", "HYDRA_FULL_ERROR", "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

    where = _run([sys.executable, "-c", "import townlet; print(townlet.__file__)"], workdir, env)
    assert Path(where.stdout.strip()).is_relative_to(site)  # the wheel, not the checkout

    _run([sys.executable, "-m", "townlet.train", "experiment=smoke"], workdir, env)
    (run_dir,) = (workdir / "outputs" / "runs").glob("*/*_smoke")
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and (run_dir / "result.json").is_file()
    assert any((workdir / "data").iterdir())  # the captured dataset went to the cwd too

    # the tools' subcommand is found through the wheel's entry point, not the checkout
    usage = _run([sys.executable, "-m", "townlet.cli.dataset", "import-legacy", "--help"], workdir, env)
    assert "--ragged" in usage.stdout

    report = _run([sys.executable, "-m", "townlet.cli.report", str(run_dir), "--json"], workdir, env)
    data = json.loads(report.stdout)
    assert data["status"] == "completed" and data["config"]["strategy"] == "bc"
    assert Path(data["paths"]["checkpoint"]).is_relative_to(workdir)


@pytest.mark.slow
def test_sdist_holds_what_rebuilds_and_retests_the_project(tmp_path: Path) -> None:
    """A source release carries the tests, docs, CI, licence and the tested versions, not just the code."""
    tracked = _run(["git", "ls-files"], REPO).stdout.split()
    source = tmp_path / "source"
    for name in tracked:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    build = "from setuptools import build_meta; print(build_meta.build_sdist('dist'))"
    name = _run([sys.executable, "-c", build], source).stdout.strip().splitlines()[-1]
    with tarfile.open(source / "dist" / name) as sdist:
        members = {m.split("/", 1)[1] for m in sdist.getnames() if "/" in m}
    wanted = {n for n in tracked if n.startswith(("tests/", "docs/", ".ci/", "src/"))}
    wanted |= {"LICENSE", "README.md", "Makefile", "constraints.txt", "pyproject.toml"}
    assert wanted <= members, f"missing from the sdist: {sorted(wanted - members)[:10]}"
