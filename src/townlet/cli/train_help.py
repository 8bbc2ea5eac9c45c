"""``townlet-train --help`` without Hydra: groups and options read straight from ``conf/``.

Hydra's own ``--help`` enumerates every config group through a fresh config repository each time
(deep-copying the ConfigStore ~100 times): 5-10 s on this box. This prints the same information
from the file system in a few milliseconds; Hydra's flags stay available via ``--hydra-help``.
"""

from __future__ import annotations

import re
from pathlib import Path

_DEFAULT_RE = re.compile(r"^\s*-\s*(?:optional\s+)?([\w/]+)\s*:\s*([\w.\-]+|null)\s*$")


def _defaults(train_yaml: Path) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for line in train_yaml.read_text(encoding="utf-8").splitlines():
        match = _DEFAULT_RE.match(line)
        if match:
            chosen[match.group(1)] = match.group(2)
    return chosen


def render_help(conf: Path) -> str:
    """The help text for the config tree rooted at ``conf``."""
    defaults = _defaults(conf / "train.yaml") if (conf / "train.yaml").exists() else {}
    lines = [
        "townlet-train - train a Townlet policy (Hydra app; config in conf/train.yaml)",
        "",
        "usage: townlet-train [KEY=VALUE | group=option ...] [-m] [--cfg job|hydra|all] [--schema]",
        "",
        "Config groups (group=option; * = default):",
    ]
    for folder in sorted(p for p in conf.iterdir() if p.is_dir() and p.name != "hydra"):
        options = sorted(f.stem for f in folder.glob("*.yaml"))
        marked = [f"{o}*" if defaults.get(folder.name) == o else o for o in options]
        lines.append(f"  {folder.name:<15} {', '.join(marked) or '(none yet)'}")
    lines += [
        "",
        "Top-level keys: seed=INT objective=DOTTED.KEY objective_mode=max|min resume=BOOL init_from=PATH",
        "                run_name=STR tags=[..] stop.max_wall_sec=SEC stop.target_return=R",
        "                every key is typed: strategy.lr=3e-4 device.num_threads=1",
        "",
        "Examples:",
        "  townlet-train strategy=bc strategy.epochs=5 seed=3",
        "  townlet-train -m strategy=bc,ppo seed=0,1 launcher=joblib     # multirun, one dir per job",
        "  townlet-train experiment=<preset>                             # presets in conf/experiment/",
        "  townlet-train strategy=ppo --cfg job                          # print the composed config",
        "  townlet-train --experimental-rerun RUN_DIR resume=true        # continue a run, its own overrides",
        "  townlet-train --schema                                        # JSON schema of result/run.json",
        "",
        "Flags: --cfg job|hydra|all  --resolve  -p PACKAGE  -m/--multirun  --info  -cd DIR  -cn NAME",
        "       --hydra-help (Hydra's own help)  --schema  -h/--help",
        "Run output: outputs/runs/<date>/<time-with-microseconds>_<run_name>/ "
        "(.hydra/, run.json, result.json, train.log, metrics.jsonl, checkpoints/)",
    ]
    return "\n".join(lines) + "\n"
