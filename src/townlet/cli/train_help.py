"""``townlet-train --help`` without Hydra: groups and options read straight from ``conf/``.

Hydra's own ``--help`` deep-copies the ConfigStore once per group (seconds); this reads the files.
"""

from __future__ import annotations

import re
from pathlib import Path

_DEFAULT_RE = re.compile(r"^\s*-\s*(?:optional\s+)?([\w/]+)\s*:\s*([\w.\-]+|null)\s*$")


def render_help(conf: Path) -> str:
    train = conf / "train.yaml"
    lines_in = train.read_text(encoding="utf-8").splitlines() if train.exists() else []
    defaults = {m[1]: m[2] for line in lines_in if (m := _DEFAULT_RE.match(line))}
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
