"""``python -m townlet.dto [PATH]``: print (or write) the JSON schema of result.json and run.json."""

from __future__ import annotations

import json
import sys

from townlet.dto.schema import export_json_schema
from townlet.runs.atomic import atomic_write_text


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = json.dumps(export_json_schema(), indent=2) + "\n"
    if args:
        atomic_write_text(args[0], text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
