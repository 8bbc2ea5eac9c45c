"""Shared fixtures (FOUNDATION). Sub-folders keep their own fixtures in their own conftest.py.

* ``repo_root`` / ``conf_dir`` / ``support_conf`` — paths.
* ``compose_train(overrides, support=True, hydra=False)`` — compose ``conf/train.yaml`` with the
  compose API (optionally with the test-only overlay ``tests/_support/conf``, which adds
  ``strategy=echo``), cleaning Hydra's global state afterwards.
* ``cli_env`` — environment for subprocess runs (overlay importable, no HYDRA_FULL_ERROR).
* ``run_cli(*args, cwd=..., module="townlet.train")`` — run a console module in a subprocess.

The whole session runs single-threaded with ``OMP_WAIT_POLICY=PASSIVE``, set here before anything
imports NumPy or torch and inherited by every subprocess and xdist worker: on the shared 2-core box
spinning OpenMP workers made torch tests 4-10x slower.
"""

from __future__ import annotations

import os

from townlet.packaged import CONF_DIR
from townlet.runs.seeding import configure_threads

os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # even if the shell says otherwise
configure_threads(1)  # thread env before NumPy/torch load; resizes torch's pool if already loaded

import logging  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SUPPORT = REPO_ROOT / "tests" / "_support"


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """In-process runs configure logging (Hydra's job logging, the run's train.log); a handler left
    on the root logger would write into a later test's closed capture stream."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def conf_dir() -> Path:
    return CONF_DIR


@pytest.fixture(scope="session")
def support_conf() -> Path:
    return SUPPORT / "conf"


def support_searchpath() -> str:
    """Override that adds the test-only config overlay (``strategy=echo``)."""
    return f"hydra.searchpath=[file://{SUPPORT / 'conf'}]"


@pytest.fixture
def compose_train(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., object]]:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from townlet.config.schema import conf_dir, register_configs

    register_configs()
    monkeypatch.syspath_prepend(str(SUPPORT))
    monkeypatch.setenv("TOWNLET_ALLOWED_TARGETS", "echo_strategy")

    def _compose(overrides: list[str] | None = None, *, support: bool = True, hydra: bool = False) -> object:
        GlobalHydra.instance().clear()
        extra = [support_searchpath()] if support else []
        with initialize_config_dir(config_dir=str(conf_dir())):
            return compose("train", overrides=[*extra, *(overrides or [])], return_hydra_config=hydra)

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture(scope="session")
def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(SUPPORT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        TOWNLET_ALLOWED_TARGETS="echo_strategy",
    )
    env.pop("HYDRA_FULL_ERROR", None)
    return env


@pytest.fixture
def run_cli(cli_env: dict[str, str], tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def _run(
        *args: str, cwd: Path | None = None, module: str = "townlet.train", timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=cwd or tmp_path,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return _run
