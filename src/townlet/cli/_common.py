"""What every ``townlet-*`` command shares: one-line errors, and ``key=value`` arguments composed by Hydra.

A user error is one line on stderr and exit 2; a bug keeps its traceback. Arguments after a command's
source are Hydra overrides on a small primary config in ``conf/``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from townlet.packaged import CONF_DIR
from townlet.runs.atomic import STDOUT
from townlet.runs.rundir import run_dir_holding

USER_ERROR_EXIT = 2
#: A Hydra app's run that started and stopped on bad input (``townlet-train``, ``townlet-capture``).
RUN_ERROR_EXIT = 1
_FULL_ERROR = "HYDRA_FULL_ERROR"
_USER_TRACE: list[bool] = []  # the user's own HYDRA_FULL_ERROR, per entry running in this process
#: What a shell reports for a command ended by a closed pipe (128 + SIGPIPE): ``cmd | head`` stays quiet.
PIPE_CLOSED_EXIT = 141
#: The ``world`` option that stands for the source's own world (registered per call, see ``compose``).
SOURCE_WORLD = "source_world"


def first_line(exc: BaseException) -> str:
    """The first line of ``exc`` and of each error that caused it (Hydra wraps OmegaConf's reason)."""
    parts: list[str] = []
    while exc is not None and len(parts) < 3:
        lines = str(exc).strip().splitlines()
        line = lines[0].strip() if lines else type(exc).__name__
        if line not in parts:
            parts.append(line)
        exc = exc.__cause__  # type: ignore[assignment]
    return ": ".join(parts)


def run_command(prog: str, body: Callable[[], int]) -> int:
    """``body()``; bad input is one line and :data:`USER_ERROR_EXIT` (the exception types load here, so
    a command's ``--help`` stays light)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from townlet.runs.device import DeviceUnavailableError
    from townlet.torch_guard import TorchNotAvailableError

    user_errors = (
        ValueError,
        HydraException,
        OmegaConfBaseException,
        DeviceUnavailableError,
        TorchNotAvailableError,
    )
    try:
        return body()
    except user_errors as exc:
        sys.stderr.write(f"{prog}: error: {first_line(exc)}\n")
        return USER_ERROR_EXIT
    except BrokenPipeError:  # a reader that closed stdout: ``console`` ends the command quietly
        raise
    except OSError as exc:  # a folder vanished or filled up between a check and a write
        sys.stderr.write(f"{prog}: error: {exc.strerror or exc} ({getattr(exc, 'filename', '')})\n")
        return USER_ERROR_EXIT


def check_writable(out: str | Path, example: str) -> None:
    """Refuse, before any work, an ``out`` that cannot become a file (``example``: a file name to suggest)."""
    path = Path(out).expanduser()
    if path.is_dir():
        raise ValueError(f"out={out} is a directory; give a file name, e.g. out={path / example}")
    if not path.parent.is_dir():
        raise ValueError(f"out={out}: folder {path.parent} does not exist; create it or choose another out=")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise ValueError(f"out={out}: folder {path.parent} is not writable; choose another out=")
    refuse_run_file(out, "out=")


def refuse_run_file(out: str | Path, option: str) -> None:
    """An output never replaces a file of a run (``--json RUN/result.json`` would overwrite its record);
    links are followed, as the writers follow them, and ``-`` is standard output, as they read it."""
    if str(out) == STDOUT:
        return
    holder = run_dir_holding(out)
    if holder is not None and Path(out).expanduser().is_file():
        raise ValueError(
            f"{option}{out} is a file of the run in {holder}, and a command's output never replaces one; "
            "choose another path"
        )


Entry = TypeVar("Entry", bound=Callable[..., Any])


def console(prog: str) -> Callable[[Entry], Entry]:
    """Every command ends the same way on a signal (one line, exit 128 + signal; a training loop still
    stops at its next safe point) or a closed pipe (quietly, :data:`PIPE_CLOSED_EXIT`, as ``cat``)."""

    def wrap(main: Entry) -> Entry:
        @functools.wraps(main)
        def entry(*args: Any, **kwargs: Any) -> Any:
            from townlet.runs.interrupt import StopSignals, interrupt_exit_code, interrupt_message

            signals = StopSignals().install()
            try:
                try:
                    return main(*args, **kwargs)
                finally:
                    sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
            except BrokenPipeError:  # stdout onto /dev/null: the interpreter's last flush stays quiet
                with contextlib.suppress(AttributeError, OSError, ValueError):  # not a file (a test's)
                    fd, devnull = sys.stdout.fileno(), os.open(os.devnull, os.O_WRONLY)
                    os.dup2(devnull, fd)
                    os.close(devnull)
                return PIPE_CLOSED_EXIT
            except KeyboardInterrupt as exc:
                signals.hold()
                with contextlib.suppress(OSError):  # stderr closed as well: the exit code still tells
                    sys.stderr.write(f"{prog}: {interrupt_message(exc)}\n")
                    sys.stderr.flush()
                return interrupt_exit_code(exc)
            finally:
                signals.restore()

        return entry  # type: ignore[return-value]

    return wrap


@contextlib.contextmanager
def hydra_raises() -> Iterator[None]:
    """Hydra re-raises a config it cannot compose (its documented ``HYDRA_FULL_ERROR=1``) instead of
    printing its multi-line report; :func:`user_wants_trace` keeps what the user had set."""
    before = os.environ.get(_FULL_ERROR)
    _USER_TRACE.append(before == "1")
    os.environ[_FULL_ERROR] = "1"
    try:
        yield
    finally:
        _USER_TRACE.pop()
        if before is None:
            os.environ.pop(_FULL_ERROR, None)
        else:
            os.environ[_FULL_ERROR] = before


def user_wants_trace() -> bool:
    """Whether the user set ``HYDRA_FULL_ERROR=1`` (a job process of a sweep inherits the entry's)."""
    return _USER_TRACE[-1] if _USER_TRACE else os.environ.get(_FULL_ERROR) == "1"


def error_exit(prog: str, exc: BaseException, *, bad_input: bool, hint: str = "") -> int:
    """One stderr line and the exit code of a Hydra app: a config Hydra or OmegaConf refused (exit 2),
    or bad input (exit 1); a bug, or any error while the user set ``HYDRA_FULL_ERROR=1``, re-raises."""
    from townlet.config.errors import describe_config_error

    if user_wants_trace():
        raise exc
    message = describe_config_error(exc)
    if message is not None:
        sys.stderr.write(f"{prog}: config error: {message}\n")
        return USER_ERROR_EXIT
    if not bad_input:
        raise exc
    sys.stderr.write(f"{prog}: error: {exc}{hint}\n")
    return RUN_ERROR_EXIT


def compose(config_name: str, schema: type, overrides: Sequence[str], world: Any = None) -> Any:
    """``conf/<config_name>.yaml`` typed by ``schema``, with ``overrides``; without ``world=``, ``world``
    (the source's own) is the base, as option :data:`SOURCE_WORLD`."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.config_store import ConfigStore
    from hydra.core.override_parser.overrides_parser import OverridesParser

    items = list(overrides)
    parsed = OverridesParser.create().parse_overrides(overrides=items)
    chosen = [o for o in parsed if o.key_or_group == "world" and not o.is_delete()]
    if chosen and str(chosen[-1].value()).endswith((".yaml", ".yml")):
        from townlet.world import load_world_config

        world = load_world_config(str(chosen[-1].value()))
        items = [i for i, o in zip(items, parsed, strict=True) if o not in chosen]
        chosen = []
    ConfigStore.instance().store(name=f"{config_name}_schema", node=schema, replace=True)
    if world is not None and not chosen:
        node = dict(world) if isinstance(world, Mapping) else world
        ConfigStore.instance().store(group="world", name=SOURCE_WORLD, node=node, replace=True)
        items = [f"world={SOURCE_WORLD}", *items]
    with initialize_config_dir(config_dir=str(CONF_DIR), job_name=config_name):
        return hydra_compose(config_name=config_name, overrides=items)
