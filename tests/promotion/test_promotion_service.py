"""PromotionService persistence, streak rules, release moves, baseline store and the file lock."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from townlet.promotion.baselines import BaselineStore, BaselineStoreError
from townlet.promotion.files import PromotionStateFile
from townlet.promotion.state import (
    PromotionError,
    PromotionService,
    PromotionStateError,
    apply_evaluation,
)


def test_two_passes_make_the_candidate_ready_and_persist(tmp_path: Path) -> None:
    svc = PromotionService(tmp_path)
    first = svc.record_evaluation("PASS", run_dir=tmp_path / "r1", checkpoint="r1/last.pt")
    assert (first["pass_streak"], first["candidate_ready"], first["state"]) == (1, False, "monitoring")
    # A new service object (a new process) sees the persisted streak.
    second = PromotionService(tmp_path).record_evaluation("PASS", run_dir=tmp_path / "r2", checkpoint="c2")
    assert (second["pass_streak"], second["candidate_ready"], second["state"]) == (2, True, "ready")
    assert second["candidate"]["run_dir"] == str(tmp_path / "r2")
    assert second["candidate_ready_evaluation"] == 2
    events = svc.history()
    assert [e["status"] for e in events] == ["PASS", "PASS"]
    assert events[-1]["state"]["pass_streak"] == 2  # each event embeds its snapshot


def test_hold_resets_the_streak_by_default(tmp_path: Path) -> None:
    svc = PromotionService(tmp_path)
    for status in ("PASS", "HOLD", "PASS"):
        snap = svc.record_evaluation(status, run_dir=tmp_path / status)
    assert snap["pass_streak"] == 1
    assert snap["candidate_ready"] is False


def test_hold_can_be_configured_to_keep_the_streak(tmp_path: Path) -> None:
    svc = PromotionService(tmp_path, hold_resets_streak=False)
    for status in ("PASS", "HOLD", "PASS"):
        snap = svc.record_evaluation(status, run_dir=tmp_path / status)
    assert snap["pass_streak"] == 2
    assert snap["candidate_ready"] is True
    # FAIL still resets.
    snap = svc.record_evaluation("FAIL")
    assert (snap["pass_streak"], snap["candidate_ready"], snap["state"]) == (0, False, "monitoring")


def test_losing_readiness_returns_to_monitoring() -> None:
    st = PromotionStateFile()
    for status in ("PASS", "PASS"):
        st = apply_evaluation(st, status, required_passes=2, candidate={"run_dir": "x"})
    assert st.state == "ready"
    st = apply_evaluation(st, "FAIL", required_passes=2)
    assert (st.state, st.candidate_ready, st.candidate) == ("monitoring", False, None)


def test_bad_status_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PASS, HOLD, FAIL"):
        PromotionService(tmp_path).record_evaluation("MAYBE")


def test_promote_and_rollback_move_the_release(tmp_path: Path) -> None:
    svc = PromotionService(tmp_path, required_passes=1)
    with pytest.raises(PromotionError, match="no candidate is ready"):
        svc.promote()
    with pytest.raises(PromotionError, match="nothing to roll back"):
        svc.rollback()
    svc.record_evaluation("PASS", run_dir=tmp_path / "a", checkpoint="a.pt")
    with pytest.raises(PromotionError, match="not the ready candidate"):
        svc.promote(run_dir=tmp_path / "other")
    snap = svc.promote(run_dir=tmp_path / "a")
    assert snap["state"] == "promoted"
    assert snap["current_release"]["checkpoint"] == "a.pt"
    assert snap["pass_streak"] == 0
    svc.record_evaluation("PASS", run_dir=tmp_path / "b", checkpoint="b.pt")
    assert svc.snapshot()["state"] == "ready"
    svc.promote()
    assert svc.snapshot()["current_release"]["checkpoint"] == "b.pt"
    back = svc.rollback()
    assert back["state"] == "monitoring"
    assert back["current_release"]["checkpoint"] == "a.pt"
    assert svc.rollback()["current_release"] is None
    assert [e["event"] for e in svc.history()][-2:] == ["rollback", "rollback"]


def test_force_promotes_without_a_ready_candidate(tmp_path: Path) -> None:
    svc = PromotionService(tmp_path)
    snap = svc.promote(run_dir=tmp_path / "x", checkpoint="x.pt", force=True)
    assert snap["current_release"]["run_dir"] == str(tmp_path / "x")


def test_corrupt_state_gives_a_clear_error(tmp_path: Path) -> None:
    svc = PromotionService(tmp_path)
    svc.state_path.parent.mkdir(parents=True)
    svc.state_path.write_text("{not json")
    with pytest.raises(PromotionStateError, match="unreadable"):
        svc.snapshot()


def test_baseline_store_round_trip(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    assert store.get("scripted@default") is None
    store.put("scripted@default", {"loss_total": 1.5, "queue_conflict_events": float("nan"), "x": 3})
    assert BaselineStore(tmp_path).get("scripted@default") == {"loss_total": 1.5}
    store.put("other", {"queue_conflict_events": 4})
    assert set(store.all()) == {"scripted@default", "other"}
    store.path.write_text("[")
    with pytest.raises(BaselineStoreError, match="not valid JSON"):
        store.get("other")


WORKER = textwrap.dedent(
    """
    import sys
    from townlet.promotion.baselines import BaselineStore
    from townlet.promotion.state import PromotionService

    state_dir, worker, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    svc = PromotionService(state_dir, required_passes=2)
    for i in range(n):
        svc.record_evaluation("PASS" if (worker + i) % 3 else "HOLD", run_dir=f"w{worker}/r{i}")
    BaselineStore(state_dir).put(f"label{worker}", {"loss_total": float(worker + 1)})
    """
)


def test_four_parallel_processes_lose_no_update(tmp_path: Path) -> None:
    workers, per_worker = 4, 25
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), str(w), str(per_worker)])
        for w in range(workers)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * workers
    svc = PromotionService(tmp_path)
    snap = svc.snapshot()
    assert snap["evaluations"] == workers * per_worker
    events = svc.history()
    assert len(events) == workers * per_worker
    # Every event saw a distinct, consecutive evaluation number: no two processes read the same state.
    assert sorted(e["state"]["evaluations"] for e in events) == list(range(1, workers * per_worker + 1))
    assert json.loads(svc.state_path.read_text())["evaluations"] == workers * per_worker
    assert BaselineStore(tmp_path).all().keys() == {f"label{w}" for w in range(workers)}
