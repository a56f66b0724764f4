"""Tracking logs: compaction never hides an acknowledged entry, and repair-logs refolds a log."""
from __future__ import annotations

import json
import math
import threading
import time

import pytest

from chalicelib import cli, services
from chalicelib.tracking import eventlog
from chalicelib.tracking.service import TrackingService
from tests.helpers.stores import InstrumentedStore

MARGIN = 1.0


def _run(svc: TrackingService, eid: str = "0") -> str:
    return svc.create_run({"experiment_id": eid, "user_id": "u"}).info.run_id


def _metric(key: str, value: float, step: int = 0) -> dict:
    return {"key": key, "value": value, "timestamp": 1000, "step": step}


def _values(svc: TrackingService, run_id: str, key: str) -> list[float]:
    return [m.value for m in svc.get_metric_history(run_id, key, None, None).items]


@pytest.fixture
def small_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventlog, "MARGIN_S", MARGIN)
    monkeypatch.setattr(eventlog, "COMPACT_AFTER", 1)


def test_an_entry_landing_during_a_slow_refresh_is_not_hidden_by_compaction(store, small_margin):
    """W is keyed before X but lands after the compactor's LIST; the compactor then stalls past the margin.

    A cutoff taken after the stall covers X's key, so the snapshot would cover W without holding it.
    """
    hooked = InstrumentedStore(store)
    run_id = _run(TrackingService(hooked))
    run_log = f"mlflow/runs/{run_id}/"
    w_put, release_w = hooked.pause("before", "PUT",
                                    lambda call: call.key.startswith(run_log) and b'["w",' in (call.body or b""))
    listed, release_compactor = hooked.pause("after", "LIST", lambda call: call.key == run_log, thread="compactor")
    errors: list[BaseException] = []

    def call(fn, *args) -> None:  # type: ignore[no-untyped-def]
        try:
            fn(*args)
        except BaseException as err:  # noqa: BLE001 - reported by the assertions below
            errors.append(err)

    writer_w = threading.Thread(target=call, args=(TrackingService(hooked).log_batch, run_id, [_metric("w", 1.0)],
                                                   [], []))
    writer_w.start()
    assert w_put.wait(5)  # W has its key; its PUT to the run log is held back
    time.sleep(0.002)
    TrackingService(hooked).log_batch(run_id, [_metric("x", 2.0)], [], [])  # X: a later key, lands first
    compactor = TrackingService(hooked)
    reader = threading.Thread(target=call, args=(compactor.get_run, run_id), name="compactor")
    reader.start()
    assert listed.wait(5)  # the compactor has listed: X is in its LIST, W is not
    release_w.set()
    writer_w.join(5)
    assert not errors, errors  # W was acknowledged well within the margin
    time.sleep(MARGIN + 0.2)  # the compactor stalls (S3 retries, CPU starvation) past X's settling time
    release_compactor.set()
    reader.join(5)
    assert not errors, errors

    for svc in (compactor, TrackingService(store)):
        assert _values(svc, run_id, "w") == [1.0]
        assert {m.key for m in svc.get_run(run_id).metrics} == {"w", "x"}
    time.sleep(MARGIN + 0.1)  # now everything settles and is compacted
    compactor.get_run(run_id)
    assert json.loads(store.get(run_log + "snapshot.json").body)["covered"] >= max(
        k.rsplit("/", 1)[1][:-5] for k in (i.key for i in store.list(run_log + "log/")))
    assert _values(TrackingService(store), run_id, "w") == [1.0]


def _hide_entry(store, prefix: str, entry: dict) -> None:  # type: ignore[no-untyped-def]
    """Write an entry keyed just below the snapshot's covered key: what a lost race used to leave."""
    covered = store.get_json(prefix + "snapshot.json")["covered"]
    stamp = eventlog.entry_time_us(covered) - 1
    store.put_json(f"{prefix}log/{stamp:017d}-hidden000000.json", entry, if_none_match=True)


@pytest.fixture
def cli_store(local_store, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The CLI sets STACFLOW_STORE and reconfigures the process: undo both afterwards."""
    monkeypatch.setenv("STACFLOW_STORE", local_store.uri)
    yield local_store
    services.configure()


@pytest.mark.parametrize("scope", ["run", "experiment", "all"])
def test_repair_logs_recovers_an_entry_hidden_below_the_cutoff(cli_store, small_margin, scope, capsys):
    local_store = cli_store
    svc = TrackingService(local_store)
    eid = svc.create_experiment("repair-me", None, [])
    run_id = _run(svc, eid)
    svc.log_batch(run_id, [_metric("m", 1.0)], [], [])
    time.sleep(MARGIN + 0.1)
    svc.get_run(run_id)  # compacts both logs
    svc.search_runs([eid], None, None, None, [], None)
    lost = {"run": run_id, "time": 1, "metrics": [["lost", 7.0, 1000, 0, None, None, None]],
            "params": {"p": "v"}}
    _hide_entry(local_store, f"mlflow/runs/{run_id}/", lost)
    _hide_entry(local_store, f"mlflow/experiment-runs/{eid}/", lost)
    fresh = TrackingService(local_store)
    assert _values(fresh, run_id, "lost") == []  # hidden: readers list after the covered key

    args = {"run": ["--run", run_id], "experiment": ["--experiment", eid], "all": ["--all"]}[scope]
    assert cli.main(["repair-logs", "--store", local_store.uri, *args]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["repaired"]) == {f"mlflow/runs/{run_id}/", f"mlflow/experiment-runs/{eid}/"}

    for reader in (TrackingService(local_store), svc):  # svc: warm since before the repair (it bumps the tip)
        assert _values(reader, run_id, "lost") == [7.0]
        assert reader.get_run(run_id).to_wire()["data"]["params"] == [{"key": "p", "value": "v"}]
        found = reader.search_runs([eid], "params.p = 'v'", None, None, [], None).items
        assert [r.info.run_id for r in found] == [run_id]
    assert cli.main(["repair-logs", "--store", local_store.uri, *args]) == 0  # idempotent: nothing left
    assert json.loads(capsys.readouterr().out)["repaired"] == []


def test_check_finds_a_snapshot_hiding_an_entry_and_repair_clears_it(cli_store, small_margin):
    svc = TrackingService(cli_store)
    eid = svc.create_experiment("check-me", None, [])
    run_id = _run(svc, eid)
    svc.log_batch(run_id, [_metric("m", 1.0)], [], [])
    time.sleep(MARGIN + 0.1)
    svc.get_run(run_id)  # compacts both logs
    svc.search_runs([eid], None, None, None, [], None)
    assert TrackingService(cli_store).check_logs() == []
    lost = {"run": run_id, "time": 1, "metrics": [["lost", 7.0, 1000, 0, None, None, None]]}
    _hide_entry(cli_store, f"mlflow/runs/{run_id}/", lost)
    assert TrackingService(cli_store).check_logs() == [f"mlflow/runs/{run_id}/"]
    assert cli.main(["check", "--store", cli_store.uri]) == 1
    TrackingService(cli_store).repair_logs()
    assert TrackingService(cli_store).check_logs() == []


def test_a_warm_reader_revalidates_with_one_conditional_get(store):
    hooked = InstrumentedStore(store)
    writer, reader = TrackingService(store), TrackingService(hooked)
    eid = writer.create_experiment("tip", None, [])
    run_ids = [_run(writer, eid) for _ in range(30)]
    for i, run_id in enumerate(run_ids):
        writer.log_batch(run_id, [_metric("m", float(i))], [], [])
    assert len(reader.search_runs([eid], "metrics.m >= 0", None, None, [], None).items) == 30
    hooked.calls.clear()
    hooked.log.clear()
    assert len(reader.search_runs([eid], "metrics.m >= 0", None, None, [], None).items) == 30
    # the experiment's record and the log's tip, both answered 304: no LIST however long the tail
    assert hooked.calls == {"GET": 2}
    assert f"mlflow/experiment-runs/{eid}/tip.json" in {c.key for c in hooked.log}
    assert reader.search_runs([eid], "metrics.m > 50", None, None, [], None).items == []
    writer.log_batch(run_ids[0], [_metric("m", 100.0, 1)], [], [])  # another process writes
    hooked.calls.clear()
    found = reader.search_runs([eid], "metrics.m > 50", None, None, [], None).items
    assert [r.info.run_id for r in found] == [run_ids[0]]  # seen by the next read, the same search
    assert hooked.calls["LIST"] == 1
    writer.delete_run(run_ids[0])
    assert reader.search_runs([eid], "metrics.m > 50", None, None, [], None).items == []
    writer.delete_experiment(eid)  # the runs' lifecycle changes with no entry in their log
    assert reader.search_runs([eid], "metrics.m >= 0", None, None, [], None).items == []
    assert len(reader.search_runs([eid], "metrics.m >= 0", "ALL", None, [], None).items) == 30


def _background(fn, *args) -> tuple[threading.Thread, list[BaseException]]:  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn(*args)
        except BaseException as err:  # noqa: BLE001 - reported by the caller's assertions
            errors.append(err)
    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def _landed(store, eid: str, marker: bytes) -> bool:  # type: ignore[no-untyped-def]
    return any(marker in store.get(i.key).body for i in store.list(f"mlflow/experiment-runs/{eid}/log/"))


@pytest.mark.parametrize("held", ["tip", "entry"])
def test_a_write_is_seen_once_acknowledged_whatever_the_readers_interleaving(store, held):
    """The experiment log's entry and its tip are PUT side by side: either may land first. A read
    in between may miss the entry (nothing was acknowledged) but must not trust that view past the
    write; once the write returns, every reader sees it."""
    hooked = InstrumentedStore(store)
    writer, reader = TrackingService(hooked), TrackingService(store)
    eid = writer.create_experiment("held", None, [])
    run_id = _run(writer, eid)
    reader.search_runs([eid], None, None, None, [], None)  # warm
    log = f"mlflow/experiment-runs/{eid}/"
    hold = (lambda call: call.key == log + "tip.json") if held == "tip" else \
        (lambda call: call.key.startswith(log + "log/") and b"late" in (call.body or b""))
    pause = hooked.pause("before", "PUT", hold)
    thread, errors = _background(writer.log_batch, run_id, [_metric("late", 1.0)], [], [])
    assert pause.reached.wait(5)
    deadline = time.time() + 5
    while held == "tip" and not _landed(store, eid, b"late") and time.time() < deadline:
        time.sleep(0.01)  # the entry's own PUT goes on
    assert _landed(store, eid, b"late") == (held == "tip")
    reader.search_runs([eid], "metrics.late = 1", None, None, [], None)  # may or may not see it
    pause.release.set()
    thread.join(5)
    assert not errors, errors
    for svc in (reader, TrackingService(store)):
        found = svc.search_runs([eid], "metrics.late = 1", None, None, [], None).items
        assert [r.info.run_id for r in found] == [run_id]


def test_an_append_whose_tip_was_overwritten_before_its_entry_landed_puts_the_tip_again(store):
    """W1's entry is held; W2 writes (its tip replaces W1's) and a reader confirms W2's tip. W1's
    entry then lands: its tip is no longer current, so W1 PUTs one more before acknowledging, and
    the reader's next search (a conditional GET first) sees W1's write."""
    hooked = InstrumentedStore(store)
    w1, w2, reader = TrackingService(hooked), TrackingService(store), TrackingService(hooked)
    eid = w1.create_experiment("overwritten", None, [])
    run_a, run_b = _run(w1, eid), _run(w1, eid)
    reader.search_runs([eid], None, None, None, [], None)  # warm
    log = f"mlflow/experiment-runs/{eid}/"
    pause = hooked.pause("before", "PUT", lambda call: call.key.startswith(log + "log/") and b"one" in (call.body or b""))
    w1_tip = threading.Event()  # W1's tip goes side by side with its entry: it must land before W2's
    hooked.hooks.append(lambda when, call: w1_tip.set() if (when, call.verb, call.key) == ("after", "PUT", log + "tip.json")
                        else None)
    thread, errors = _background(w1.log_batch, run_a, [_metric("one", 1.0)], [], [])
    assert pause.reached.wait(5)
    assert w1_tip.wait(5)
    w2.log_batch(run_b, [_metric("two", 2.0)], [], [])
    assert [r.info.run_id for r in reader.search_runs([eid], "metrics.two = 2", None, None, [], None).items] == [run_b]
    hooked.log.clear()
    pause.release.set()
    thread.join(5)
    assert not errors, errors
    tips = [c.body for c in hooked.log if c.verb == "PUT" and c.key == log + "tip.json"]
    assert len(tips) == 1
    assert (tips[0] or b"").startswith(b"after ")
    found = reader.search_runs([eid], "metrics.one = 1", None, None, [], None).items
    assert [r.info.run_id for r in found] == [run_a]


def test_non_finite_values_and_wide_integers_survive_the_stored_entry(store):
    """Entries are written with orjson where it is exact; NaN, infinities and integers over 64 bits
    (which it would turn into null or refuse) are kept too, as MLflow keeps them."""
    writer = TrackingService(store)
    run_id = _run(writer)
    values = [1.5, math.nan, math.inf, -math.inf]
    writer.log_batch(run_id, [_metric("v", value, step) for step, value in enumerate(values)], [], [])
    writer.log_batch(run_id, [{"key": "wide", "value": 1.0, "timestamp": 2 ** 70, "step": 0}], [], [])
    reader = TrackingService(store)  # reads what is stored, not the writer's own copy
    got = _values(reader, run_id, "v")
    assert got[0] == 1.5
    assert math.isnan(got[1])
    assert got[2:] == [math.inf, -math.inf]
    assert [m.timestamp for m in reader.get_metric_history(run_id, "wide", None, None).items] == [2 ** 70]


def test_an_append_makes_its_entries_durable_and_writes_the_tip_as_a_hint(tmp_path, monkeypatch):
    """On the local store a write's two entries are log entries (synced before it is acknowledged,
    data and name together: tests/store/test_local.py); the tip, which only tells readers whether to
    LIST, is a hint (its loss in a crash costs a LIST, see the next test)."""
    from chalicelib.store.local import LocalStore
    store = LocalStore(tmp_path / "store")
    svc = TrackingService(store)
    eid = svc.create_experiment("durable", None, [])
    run_id = _run(svc, eid)
    entries, hints, others = [], [], []
    real_entry, real_hint, real_put = store.create_entry, store.put_hint, store._put
    monkeypatch.setattr(store, "create_entry", lambda key, body, **kw: entries.append(key) or real_entry(key, body, **kw))
    monkeypatch.setattr(store, "put_hint", lambda key, body, **kw: hints.append(key) or real_hint(key, body, **kw))
    monkeypatch.setattr(store, "_put", lambda key, body, **kw: (kw.get("durable", True) and others.append(key))
                        or real_put(key, body, **kw))
    svc.log_batch(run_id, [_metric("m", 1.0)], [], [])
    assert sorted(key.split("/")[1] for key in entries) == ["experiment-runs", "runs"]
    assert all("/log/" in key for key in entries)
    assert hints == [f"mlflow/experiment-runs/{eid}/tip.json"]
    assert others == []


def test_a_write_to_a_local_store_places_its_entries_on_the_calling_thread_then_syncs_them_together(
        tmp_path, monkeypatch):
    """On a local directory a write's calls are made on the request's thread, one after the other
    (thread hand-offs under the GIL cost more than they overlap), and its entries are made durable
    together: both names placed, then both entries' data and folders synced (one commit), before the
    write returns."""
    import os

    from chalicelib.store import local as local_module
    from chalicelib.store.local import LocalStore
    store = LocalStore(tmp_path / "store")
    svc = TrackingService(store)
    eid = svc.create_experiment("together", None, [])
    run_id = _run(svc, eid)
    svc.get_run(run_id)
    events: list[tuple[str, str, str]] = []
    real_link, real_fdatasync, real_sync_dir = os.link, os.fdatasync, local_module._fsync_dir

    def link(src, dst, *args, **kwargs):
        real_link(src, dst, *args, **kwargs)
        if not os.path.basename(dst).startswith(local_module._TMP):  # not the tip's replaced version, kept a while
            events.append(("name", threading.current_thread().name, str(dst)))

    def fdatasync(fd):
        events.append(("data", threading.current_thread().name, os.readlink(f"/proc/self/fd/{fd}")))
        real_fdatasync(fd)

    def sync_dir(path):
        events.append(("folder", threading.current_thread().name, str(path)))
        real_sync_dir(path)
    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(local_module, "_fsync_dir", sync_dir)
    svc.log_batch(run_id, [_metric("m", 1.0)], [], [])
    names = [(who, path) for kind, who, path in events if kind == "name"]
    assert [path.split("/mlflow/")[1].split("/")[0] for _, path in names] == ["runs", "experiment-runs"]
    assert {who for who, _ in names} == {threading.current_thread().name}
    assert [kind for kind, _, _ in events[:2]] == ["name", "name"]  # no sync before both are placed
    assert sorted(path for kind, _, path in events if kind == "data") == sorted(path for _, path in names)
    assert sorted(path for kind, _, path in events if kind == "folder") == sorted(
        os.path.dirname(path) for _, path in names)


@pytest.mark.parametrize("crash", ["reverted", "lost"])
def test_a_tip_reverted_or_lost_in_a_crash_hides_no_acknowledged_write(store, crash):
    """After a crash the tip may read as an earlier version, or be absent: the processes that come
    back (none kept a confirmed version) see every acknowledged write, and go on writing and reading."""
    writer = TrackingService(store)
    eid = writer.create_experiment("crash", None, [])
    run_ids = [_run(writer, eid) for _ in range(3)]
    writer.log_batch(run_ids[0], [_metric("m", 1.0)], [], [])
    tip = f"mlflow/experiment-runs/{eid}/tip.json"
    old = store.get(tip).body
    writer.log_batch(run_ids[1], [_metric("m", 2.0)], [], [])
    if crash == "reverted":
        store.put(tip, old)
    else:
        store.delete(tip)
    reader, writer = TrackingService(store), TrackingService(store)
    found = reader.search_runs([eid], "metrics.m > 0", None, None, ["metrics.m ASC"], None).items
    assert [r.info.run_id for r in found] == run_ids[:2]
    writer.log_batch(run_ids[2], [_metric("m", 3.0)], [], [])
    found = reader.search_runs([eid], "metrics.m > 0", None, None, ["metrics.m ASC"], None).items
    assert [r.info.run_id for r in found] == run_ids


@pytest.mark.parametrize("torn", [b"", b'{"run": "', b"\x00" * 16])
def test_an_entry_torn_by_a_crash_reads_as_never_written(store, torn):
    """A crash while ``create_entry`` was syncing can leave the entry empty, cut short or zero-filled
    (never acknowledged: the client retried). Readers skip it, once: it is not fetched again."""
    writer = TrackingService(store)
    eid = writer.create_experiment("torn", None, [])
    run_id = _run(writer, eid)
    writer.log_batch(run_id, [_metric("m", 1.0)], [{"key": "p", "value": "1"}], [])
    for log in (f"mlflow/runs/{run_id}/log/", f"mlflow/experiment-runs/{eid}/log/"):
        store.put(f"{log}{eventlog.new_entry_key()}.json", torn)
    writer.log_batch(run_id, [_metric("m", 2.0, 1)], [], [])  # after the crash, the log goes on
    hooked = InstrumentedStore(store)
    reader = TrackingService(hooked)
    run = reader.get_run(run_id)
    assert ({m.key: m.value for m in run.metrics}, run.params) == ({"m": 2.0}, {"p": "1"})
    assert _values(reader, run_id, "m") == [1.0, 2.0]
    found = reader.search_runs([eid], "metrics.m = 2 and params.p = '1'", None, None, [], None).items
    assert [r.info.run_id for r in found] == [run_id]
    hooked.log.clear()
    reader.get_run(run_id)
    assert [c.key for c in hooked.log if c.verb == "GET" and "/log/" in c.key] == []
    assert TrackingService(store).check_logs() == []


@pytest.mark.parametrize("torn", [b"", b'{"experiment_id": "'])
def test_a_run_pointer_torn_by_a_crash_reads_as_a_run_never_created(store, torn):
    """The pointer naming a run's experiment is written with ``create_entry`` too: torn (its create
    was never acknowledged), the run is not found, as MLflow answers for an unknown run, not a 500."""
    from chalicelib.mlflowapi.errors import MlflowError
    run_id = "0" * 32
    store.put(f"mlflow/runs/{run_id}.json", torn)
    with pytest.raises(MlflowError) as err:
        TrackingService(store).get_run(run_id)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
