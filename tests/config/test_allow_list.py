"""The import-path allow-list: names are resolved from an allowed module down and judged by the module
that defines the object, so re-exports (``townlet.x.os.system``) are refused and nothing outside the
allow-list is imported."""

from __future__ import annotations

import sys

import pytest

from townlet.config.instantiate import (
    EXTRA_TARGETS_ENV,
    ComponentNotAvailableError,
    ConfigError,
    TargetNotAllowedError,
    check_import_paths,
    iter_import_paths,
    resolve_target,
)


@pytest.mark.parametrize(
    ("dotted", "phrase"),
    [
        ("townlet.runs.record.os.system", "defined in posix"),
        ("townlet.runs.record.os", "defined in os"),
        ("townlet.config.instantiate.importlib.import_module", "defined in importlib"),
        ("os.system", "outside the allowed packages"),
        ("builtins.eval", "outside the allowed packages"),
        ("townletx.evil", "outside the allowed packages"),  # a package named like ours is not ours
        ("numpy.load", "outside the allowed packages"),  # only the named numpy objects
        ("functools.reduce", "outside the allowed packages"),
    ],
)
def test_refused(dotted: str, phrase: str) -> None:
    with pytest.raises(TargetNotAllowedError, match=phrase):
        resolve_target(dotted, "strategy._target_")


@pytest.mark.parametrize(
    ("dotted", "expected"),
    [
        ("townlet.strategies.bc.BCStrategy", "BCStrategy"),
        ("townlet.runs.rundir.RunDir", "RunDir"),
        ("townlet.runs.sweep.SweepSummaryCallback", "SweepSummaryCallback"),  # a moved name
        ("functools.partial", "partial"),
        ("pathlib.Path", "Path"),
    ],
)
def test_allowed(dotted: str, expected: str) -> None:
    assert resolve_target(dotted).__name__ == expected


def test_torch_classes_are_allowed_by_their_defining_module() -> None:
    pytest.importorskip("torch")
    assert resolve_target("torch.optim.Adam").__module__ == "torch.optim.adam"
    with pytest.raises(TargetNotAllowedError, match=r"torch\.serialization"):
        resolve_target("torch.nn.modules.module.torch.load")


def test_missing_components_name_the_missing_piece() -> None:
    with pytest.raises(ComponentNotAvailableError, match=r"townlet\.strategies has no 'nope'"):
        resolve_target("townlet.strategies.nope.NopeStrategy")
    with pytest.raises(ComponentNotAvailableError, match=r"townlet\.runs\.rundir has no 'Nope'"):
        resolve_target("townlet.runs.rundir.Nope")
    with pytest.raises(TargetNotAllowedError, match="not a dotted name"):
        resolve_target("townlet..x")


def test_a_non_callable_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a class or function"):
        resolve_target("townlet.runs.rundir.RESULT_FILE")


def test_nothing_outside_the_allow_list_is_imported() -> None:
    assert "antigravity" not in sys.modules
    with pytest.raises(TargetNotAllowedError):
        resolve_target("antigravity.fly")
    assert "antigravity" not in sys.modules


def test_user_packages_join_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TargetNotAllowedError):
        resolve_target("json.decoder.JSONDecoder")
    monkeypatch.setenv(EXTRA_TARGETS_ENV, "json.")  # with or without the trailing dot
    assert resolve_target("json.decoder.JSONDecoder").__name__ == "JSONDecoder"
    with pytest.raises(TargetNotAllowedError, match="defined in re"):
        resolve_target("json.decoder.re.compile")  # the user's package re-exporting the stdlib


def test_every_import_path_of_a_config_is_found_and_checked() -> None:
    cfg = {
        "_target_": "townlet.x.Root",
        "strategy": {"_target_": "townlet.strategies.bc.BCStrategy", "ppo": {"_target_": "a.B"}},
        "services": {"implementations": {"replay": "code.interact", "rollout": ""}},
        "objective": "evaluation.policy.mean_return",  # dotted, but not an import path
        "list": [{"_target_": "c.D"}],
    }
    assert sorted(iter_import_paths(cfg)) == [
        ("_target_", "townlet.x.Root"),
        ("list[0]._target_", "c.D"),
        ("services.implementations.replay", "code.interact"),
        ("strategy._target_", "townlet.strategies.bc.BCStrategy"),
        ("strategy.ppo._target_", "a.B"),
    ]
    with pytest.raises(TargetNotAllowedError, match=r"services\.implementations\.replay='code\.interact'"):
        check_import_paths({"services": cfg["services"]})
