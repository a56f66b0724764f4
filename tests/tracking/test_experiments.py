"""Experiments under forced interleavings: one name per experiment, deletes that cannot be half done."""
from __future__ import annotations

import hashlib
import time

import pytest

from chalicelib.mlflowapi.errors import MlflowError
from chalicelib.tracking import experiments
from chalicelib.tracking.service import TrackingService
from tests.helpers.stores import Call, InstrumentedStore
from tests.helpers.threads import Background


def _name_key(name: str) -> str:
    return f"mlflow/experiment-names/{hashlib.sha256(name.encode()).hexdigest()}.json"


def _named(svc: TrackingService, name: str) -> list[str]:
    exps = svc.search_experiments("ALL", None, None, [], None).items
    return sorted(e.experiment_id for e in exps if e.name == name)


def test_a_create_cannot_take_a_name_a_rename_has_reserved(store):
    hooked = InstrumentedStore(store)
    svc = TrackingService(hooked)
    eid = svc.create_experiment("old", None, [])
    reserved, release = hooked.pause("after", "PUT", lambda call: call.key == _name_key("new"), thread="renamer")
    rename = Background("renamer", svc.rename_experiment, eid, "new")
    assert reserved.wait(5)  # the rename holds "new" but its record still says "old"
    with pytest.raises(MlflowError) as err:
        TrackingService(hooked).create_experiment("new", None, [])
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"
    release.set()
    rename.result()
    fresh = TrackingService(store)
    assert _named(fresh, "new") == [eid]
    assert _named(fresh, "old") == []
    assert fresh.get_experiment_by_name("new").experiment_id == eid
    assert TrackingService(store).create_experiment("old", None, [])  # the old name was released


def test_a_rename_cannot_take_a_name_a_create_has_reserved(store):
    hooked = InstrumentedStore(store)
    svc = TrackingService(hooked)
    other = svc.create_experiment("other", None, [])
    reserved, release = hooked.pause("after", "PUT", lambda call: call.key == _name_key("taken"), thread="creator")
    create = Background("creator", TrackingService(hooked).create_experiment, "taken", None, [])
    assert reserved.wait(5)
    with pytest.raises(MlflowError) as err:
        svc.rename_experiment(other, "taken")
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"
    release.set()
    created = create.result()
    fresh = TrackingService(store)
    assert _named(fresh, "taken") == [created]
    assert _named(fresh, "other") == [other]


@pytest.mark.parametrize("claimant", ["create", "rename"])
def test_a_claim_stalled_past_the_orphan_timeout_is_fenced_not_duplicated(store, monkeypatch, claimant):
    """A claimant paused after reserving a name loses it to a later create; resumed, it must not take it too."""
    monkeypatch.setattr(experiments, "ORPHAN_AFTER_S", 0.3)
    hooked = InstrumentedStore(store)
    svc = TrackingService(hooked)
    eid = svc.create_experiment("mine", None, [])
    reserved, release = hooked.pause("after", "PUT", lambda call: call.key == _name_key("contested"), thread="stalled")
    call = (svc.create_experiment, "contested", None, []) if claimant == "create" else (
        svc.rename_experiment, eid, "contested")
    stalled = Background("stalled", *call)
    assert reserved.wait(5)
    time.sleep(0.4)  # longer than the orphan timeout: the claim looks abandoned
    winner = TrackingService(hooked).create_experiment("contested", None, [])
    release.set()
    with pytest.raises(MlflowError):
        stalled.result()  # fenced: it answers an error (the client retries and sees the name taken)
    fresh = TrackingService(store)
    assert _named(fresh, "contested") == [winner]
    if claimant == "rename":
        assert fresh.get_experiment(eid).name == "mine"
        assert fresh.get_experiment_by_name("mine").experiment_id == eid


def _run(svc: TrackingService, eid: str) -> str:
    return svc.create_run({"experiment_id": eid}).info.run_id


def _stages(svc: TrackingService, run_ids: list[str]) -> set[str]:
    return {svc.get_run(r).info.lifecycle_stage for r in run_ids}


def _listed(svc: TrackingService, eid: str, view: str) -> set[str]:
    return {r.info.run_id for r in svc.search_runs([eid], None, view, None, [], None).items}


def test_deleting_a_large_experiment_is_one_write_and_a_crash_cannot_leave_runs_active(store):
    hooked = InstrumentedStore(store)
    svc = TrackingService(hooked)
    eid = svc.create_experiment("large", None, [])
    run_ids = [_run(svc, eid) for _ in range(40)]
    writes = []

    def crash_on_run_writes(when: str, call: Call) -> None:
        if when == "before" and call.verb in ("PUT", "DELETE"):
            writes.append(call.key)
            if call.key.startswith("mlflow/runs/") and len(writes) > 3:
                raise ConnectionError("the function died half-way through its fan-out")
    hooked.hooks.append(crash_on_run_writes)
    try:
        svc.delete_experiment(eid)
    except Exception:  # noqa: BLE001 - the old fan-out dies here; the client then retries
        try:
            svc.delete_experiment(eid)
        except MlflowError:
            pass
    hooked.hooks.clear()
    assert len(writes) <= 2  # whatever the number of runs

    for reader in (svc, TrackingService(store)):
        assert _stages(reader, run_ids) == {"deleted"}
        assert _listed(reader, eid, "ACTIVE_ONLY") == set()
        assert _listed(reader, eid, "DELETED_ONLY") == set(run_ids)
    with pytest.raises(MlflowError, match="must be in the 'active' state"):
        svc.log_batch(run_ids[0], [{"key": "m", "value": 1, "timestamp": 1}], [], [])


def test_a_run_created_while_its_experiment_is_deleted_is_deleted_too(store):
    hooked = InstrumentedStore(store)
    svc = TrackingService(hooked)
    eid = svc.create_experiment("racing", None, [])
    existing = _run(svc, eid)
    entry_held, release = hooked.pause(
        "before", "PUT",
        lambda call: call.key.startswith(f"mlflow/experiment-runs/{eid}/log/") and b'"create"' in (call.body or b""))
    create = Background("creator", _run, TrackingService(hooked), eid)
    assert entry_held.wait(5)  # the create passed its "experiment is active" check; its entry is in flight
    svc.delete_experiment(eid)
    release.set()
    late = create.result()
    fresh = TrackingService(store)
    assert _stages(fresh, [existing, late]) == {"deleted"}
    assert _listed(fresh, eid, "ACTIVE_ONLY") == set()


def test_restore_brings_back_every_run_as_mlflow_does_and_later_deletes_stick(store):
    svc = TrackingService(store)
    eid = svc.create_experiment("cycle", None, [])
    a, b, c = (_run(svc, eid) for _ in range(3))
    svc.delete_run(a)  # deleted on its own before the experiment: MLflow's restore revives it too
    svc.delete_experiment(eid)
    with pytest.raises(MlflowError):
        svc.restore_run(b)  # a run cannot be active under a deleted experiment
    svc.restore_experiment(eid)
    fresh = TrackingService(store)
    assert _stages(fresh, [a, b, c]) == {"active"}
    svc.delete_run(c)
    fresh = TrackingService(store)
    assert fresh.get_run(c).info.lifecycle_stage == "deleted"
    assert _listed(fresh, eid, "ACTIVE_ONLY") == {a, b}
    svc.log_batch(a, [{"key": "m", "value": 1, "timestamp": 1}], [], [])
