"""Promotion state and baseline files: validated on read, never overwritten when bad, moved aside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from townlet.cli.promote import main
from townlet.promotion.baselines import BaselineStore, BaselineStoreError
from townlet.promotion.files import BaselineFile, PromotionStateFile
from townlet.promotion.state import PromotionService, PromotionStateError


@pytest.fixture(autouse=True)
def _no_state_dir_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOWNLET_STATE_DIR", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def write_state(state_dir: Path, content: bytes) -> Path:
    path = PromotionService(state_dir).state_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


BAD_STATES = {
    "not-utf8": b"\xff\xfe{\x00",
    "not-json": b'{"state": "monitoring",',
    "a-list": b"[]",
    "release-is-a-string": b'{"current_release": "runs/abc"}',
    "streak-is-a-word": b'{"pass_streak": "many"}',
    "unknown-state": b'{"state": "shipping"}',
    "unknown-field": b'{"pass_streek": 1}',
}


@pytest.mark.parametrize("content", BAD_STATES.values(), ids=BAD_STATES.keys())
def test_bad_state_is_one_line_naming_file_and_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = write_state(tmp_path, content)
    code, _, err = run(capsys, "--state-dir", str(tmp_path), "status")
    assert code == 3 and err.count("\n") == 1 and "Traceback" not in err
    assert str(path) in err and "--reset-state" in err
    assert path.read_bytes() == content


def test_mistyped_state_names_the_field(tmp_path: Path) -> None:
    write_state(tmp_path, b'{"pass_streak": "many"}')
    with pytest.raises(
        PromotionStateError, match=r"pass_streak: Input should be a valid integer, got 'many'"
    ):
        PromotionService(tmp_path).state()


def test_force_promote_never_rewrites_a_mistyped_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_state(tmp_path, b'{"pass_streak": "many"}')
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    results = {"stages": [], "final_checkpoint": str(run_dir / "last.pt"), "state_dir": str(tmp_path)}
    (run_dir / "anneal_results.json").write_text(json.dumps(results))
    code, _, err = run(capsys, "promote", str(run_dir), "--force")
    assert code == 3 and "pass_streak" in err
    assert path.read_bytes() == b'{"pass_streak": "many"}'
    assert not PromotionService(tmp_path).history_path.exists()  # no event recorded either
    with pytest.raises(PromotionStateError):
        PromotionService(tmp_path).record_evaluation("PASS", run_dir=run_dir, checkpoint="x.pt")
    assert path.read_bytes() == b'{"pass_streak": "many"}'


def test_reset_state_moves_the_bad_file_aside_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_state(tmp_path, b"\xff garbage")
    code, out, err = run(capsys, "--state-dir", str(tmp_path), "--format", "json", "--reset-state", "status")
    assert code == 0 and json.loads(out)["pass_streak"] == 0
    kept = list(path.parent.glob("state.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"\xff garbage"
    assert f"moved unreadable {path} aside to {kept[0].name}" in err
    assert not path.exists()  # the next write starts a fresh one
    PromotionService(tmp_path).record_evaluation("PASS", run_dir=tmp_path, checkpoint="c.pt")
    assert PromotionService(tmp_path).state().pass_streak == 1


def test_reset_state_leaves_a_valid_file_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    service = PromotionService(tmp_path)
    service.record_evaluation("PASS", run_dir=tmp_path, checkpoint="c.pt")
    before = service.state_path.read_bytes()
    code, _, err = run(capsys, "--state-dir", str(tmp_path), "--reset-state", "status")
    assert code == 0 and "nothing moved" in err
    assert service.state_path.read_bytes() == before and not list(tmp_path.rglob("*.corrupt-*"))


def test_states_written_by_the_service_validate(tmp_path: Path) -> None:
    service = PromotionService(tmp_path, required_passes=1)
    service.record_evaluation("PASS", run_dir=tmp_path / "a", checkpoint="a.pt")
    service.promote()
    service.record_evaluation("PASS", run_dir=tmp_path / "b", checkpoint="b.pt")
    service.promote()
    service.rollback()
    stored = PromotionStateFile.model_validate_json(service.state_path.read_bytes())
    assert stored.state == "monitoring" and stored.current_release is not None
    assert stored.current_release.checkpoint == "a.pt"


def test_corrupt_history_line_is_named(tmp_path: Path) -> None:
    service = PromotionService(tmp_path)
    service.record_evaluation("PASS", run_dir=tmp_path, checkpoint="c.pt")
    with service.history_path.open("ab") as fh:
        fh.write(b'{"event": "evaluation", "sta\n')
    with pytest.raises(PromotionStateError, match=r"history.jsonl line 2 is corrupt"):
        service.history()


@pytest.mark.parametrize(
    "content",
    [b"\xff", b"[1, 2]", b'{"ppo": {"loss_total": "low"}}', b'{"ppo": {"loss_totl": 1.0}}', b'{"ppo": 3}'],
    ids=["not-utf8", "a-list", "metric-is-a-word", "unknown-key", "entry-not-object"],
)
def test_bad_baseline_file_is_refused_and_kept(tmp_path: Path, content: bytes) -> None:
    store = BaselineStore(tmp_path)
    store.path.write_bytes(content)
    with pytest.raises(BaselineStoreError, match="--reset-state") as caught:
        store.get("ppo")
    assert str(store.path) in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(BaselineStoreError):
        store.put("ppo", {"loss_total": 1.0})
    assert store.path.read_bytes() == content


def test_reset_state_moves_a_bad_baseline_file_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = BaselineStore(tmp_path)
    store.path.write_bytes(b"{")
    code, _, err = run(capsys, "--state-dir", str(tmp_path), "--reset-state", "status")
    assert code == 0 and "anneal_baselines.json aside" in err
    store.put("ppo", {"loss_total": 1.5, "queue_conflict_events": 2})
    assert store.get("ppo") == {"loss_total": 1.5, "queue_conflict_events": 2.0}
    BaselineFile.model_validate_json(store.path.read_bytes())
