"""Torch isolation for real: a subprocess whose import system refuses ``torch``.

The torch-free layers must import, ``--help``/``--cfg job`` must work, and a torch strategy must
fail with ``TorchNotAvailableError`` naming the install command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BLOCKER = """
import importlib.abc, sys
class _BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by test)", name=name)
        return None
sys.meta_path.insert(0, _BlockTorch())
"""

# The only modules allowed to import torch at module level: the network classes, the torch policy,
# the SB3 adapter in the tools (stable_baselines3 imports torch) and the torch maths. Every other
# ``townlet.*`` module — cli, world, replay, rollout, strategies, promotion, dto, config, runs,
# nets.checkpoints (imports torch lazily) — and every other ``townlet_tools.*`` module (bench, oracle,
# legacy) must import without it.
TORCH_MODULES = ("townlet.nets.networks", "townlet_tools.sb3", "townlet.behaviour.torch_policy")
TORCH_PACKAGES = ("townlet.algorithms.",)

# Present in every installation; guards against the module walk silently finding nothing.
MUST_BE_CHECKED = [
    "townlet.dto",
    "townlet.config.schema",
    "townlet.config.instantiate",
    "townlet.world",
    "townlet.nets.models",
    "townlet.replay",
    "townlet.rollout.collect",
    "townlet.promotion.state",
    "townlet.strategies.ppo",
    "townlet.torch_guard",
    "townlet.facade",
    "townlet.strategies.services",
    "townlet.nets.checkpoints",
    "townlet.runs.seeding",
    "townlet.cli.train",
    "townlet_tools.bench",
    "townlet_tools.bench.sim",
    "townlet_tools.oracle",
    "townlet_tools.legacy.command",
    "townlet.cli.train_help",
]


def _run(code: str, *argv: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + code, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def test_torch_free_modules_import_without_torch(cli_env, tmp_path: Path) -> None:
    code = (
        "import importlib, pkgutil, sys, townlet, townlet_tools\n"
        f"allowed, packages = {TORCH_MODULES!r}, {TORCH_PACKAGES!r}\n"
        "names = [m.name for pkg in (townlet, townlet_tools)\n"
        "         for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.')]\n"
        "checked = [n for n in names if n not in allowed and not n.startswith(packages)\n"
        "           and not n.endswith('__main__')]\n"
        "for n in checked:\n"
        "    importlib.import_module(n)\n"
        "leaked = sorted(k for k in sys.modules if k == 'torch' or k.startswith('torch.'))\n"
        "assert not leaked, leaked\n"
        "print('\\n'.join(checked))\n"
    )
    proc = _run(code, env=cli_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    checked = set(proc.stdout.split())
    assert set(MUST_BE_CHECKED) <= checked, set(MUST_BE_CHECKED) - checked
    assert not checked & set(TORCH_MODULES)


MAIN = "import sys\nsys.argv = ['townlet-train', *sys.argv[1:]]\nfrom townlet.cli.train import main\nmain()\n"


@pytest.mark.parametrize("flag", ["--help", "--cfg"])
def test_cli_help_and_cfg_job_without_torch(cli_env, tmp_path: Path, flag: str) -> None:
    args = ["strategy=bc", "--cfg", "job"] if flag == "--cfg" else ["--help"]
    code = MAIN
    code += "assert 'torch' not in sys.modules\n"
    proc = _run(code, *args, env=cli_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "strategy" in proc.stdout


def test_torch_strategy_fails_with_install_hint(cli_env, tmp_path: Path) -> None:
    code = MAIN
    proc = _run(code, "strategy=bc", f"hydra.run.dir={tmp_path / 'run'}", env=cli_env, cwd=tmp_path)
    assert proc.returncode == 1
    assert "needs PyTorch" in proc.stderr and "pip install torch==2.13.0" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert '"status": "failed"' in (tmp_path / "run" / "run.json").read_text()
