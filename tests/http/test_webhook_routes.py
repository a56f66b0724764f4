"""``POST /webhooks/gitlab``: the secret in constant time (fail closed), GitLab's payloads -> one change record."""
from __future__ import annotations

import json
import pathlib
from typing import Any, Iterator

import pytest
from chalice.test import Client

from chalicelib import services
from chalicelib.datasets.webhook import CHANGES_PREFIX
from chalicelib.settings import Settings
from chalicelib.store import ObjectStore
from tests.helpers.fake_gitlab import ZERO_SHA, FakeGitLab, commit, event_header, head, init_repo, tag
from tests.helpers.stores import InstrumentedStore

EVENTS = pathlib.Path(__file__).resolve().parent.parent / "events"
SECRET = "webhook-secret-0123456789"


def _settings(store: ObjectStore, secret: str | None = SECRET) -> Settings:
    return Settings(store_uri=store.uri, public_url=None, dispatch_events=False, webhook_secret=secret)


@pytest.fixture
def counted(local_store: ObjectStore) -> Iterator[InstrumentedStore]:
    store = InstrumentedStore(local_store)
    services.configure(store=store, settings=_settings(local_store))
    yield store
    services.configure()


@pytest.fixture
def client() -> Iterator[Client]:
    from app import app
    with Client(app) as c:
        yield c


def _post(client: Client, payload: Any, token: str | None = SECRET, event: str | None = None) -> Any:
    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    headers = {"Content-Type": "application/json",
               "X-Gitlab-Event": event or (event_header(payload) if isinstance(payload, dict) else "Push Hook")}
    if token is not None:
        headers["X-Gitlab-Token"] = token
    return client.http.post("/webhooks/gitlab", body=body, headers=headers)


def _records(store: ObjectStore) -> list[dict[str, Any]]:
    return [store.get_json(info.key) | {"_key": info.key} for info in store.list(CHANGES_PREFIX)]


def _fixture(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("token", [None, "", "wrong", SECRET[:-1], SECRET + "x", SECRET.upper(), "é" + SECRET])
def test_a_missing_or_wrong_secret_is_refused_and_nothing_is_read_or_written(counted: InstrumentedStore, client: Client,
                                                                            token: str | None) -> None:
    resp = _post(client, _fixture("gitlab-push.json"), token=token)
    assert resp.status_code == 401
    assert json.loads(resp.body) == {"message": "401 Unauthorized"}
    assert counted.total == 0


def test_without_a_configured_secret_every_webhook_is_refused(local_store: ObjectStore, client: Client) -> None:
    store = InstrumentedStore(local_store)
    services.configure(store=store, settings=_settings(local_store, secret=None))
    try:
        for token in (None, "", "anything"):
            assert _post(client, _fixture("gitlab-push.json"), token=token).status_code == 401
        assert store.total == 0
    finally:
        services.configure()


def test_the_secret_is_compared_in_constant_time(counted: InstrumentedStore, client: Client,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)
    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert _post(client, _fixture("gitlab-push.json"), token="nope").status_code == 401
    assert _post(client, _fixture("gitlab-push.json")).status_code == 200
    assert seen == [(SECRET.encode(), b"nope"), (SECRET.encode(), SECRET.encode())]


@pytest.mark.parametrize("name, kind, project_id, ref", [
    ("gitlab-push.json", "push", 15, "refs/heads/master"),
    ("gitlab-tag-push.json", "tag_push", 1, "refs/tags/v1.0.0"),
    ("gitlab-system-project-rename.json", "project_rename", 73, None),
    ("gitlab-system-repository-update.json", "repository_update", 1, None),
])
def test_documented_payloads_write_one_change_record(counted: InstrumentedStore, client: Client, name: str, kind: str,
                                                     project_id: int, ref: str | None) -> None:
    payload = _fixture(name)
    resp = _post(client, payload)
    assert resp.status_code == 200, resp.body
    assert json.loads(resp.body) == {"status": "recorded", "project_id": project_id, "kind": kind}
    [record] = _records(counted)
    assert record["_key"].startswith(f"{CHANGES_PREFIX}{project_id}/")
    assert (record["project_id"], record["kind"], record.get("ref")) == (project_id, kind, ref)
    if kind in ("push", "tag_push"):
        assert (record["before"], record["after"], record["checkout_sha"]) == (
            payload["before"], payload["after"], payload["checkout_sha"])
    if kind == "project_rename":
        assert record["old_path"] == "jsmith/overscore"
        assert record["path"] == "jsmith/underscore"
    # nothing from the request's headers is stored
    text = json.dumps(record)
    assert SECRET not in text
    assert "Push Hook" not in text
    assert "System Hook" not in text
    assert counted.calls["PUT"] == 1


def test_payloads_built_from_a_real_repository(counted: InstrumentedStore, client: Client, tmp_path: pathlib.Path) -> None:
    """push, tag push (created, deleted) and system hooks, as GitLab builds them from real commits."""
    repo = init_repo(tmp_path / "repo", {"README.md": "# data\n"})
    first = head(repo)
    second = commit(repo, {"a.txt": "a"}, "more")
    tag(repo, "v1", message="first version")
    with FakeGitLab() as gl:
        p = gl.add_project(repo, "eo/tiles", topics=["sharinghub:dataset"])
        payloads = [gl.push_payload(p.id, before=first, after=second), gl.push_payload(p.id, before=first, after=second,
                                                                                          system=True),
                    gl.tag_push_payload(p.id, "v1"), gl.tag_push_payload(p.id, "v1", deleted=True, target=second),
                    gl.system_payload("project_create", p.id), gl.system_payload("project_update", p.id),
                    gl.system_payload("project_transfer", p.id, old_path="old/tiles"),
                    gl.system_payload("project_destroy", p.id)]
    for payload in payloads:
        assert _post(client, payload).status_code == 200
    records = sorted(_records(counted), key=lambda r: r["_key"])
    assert [r["kind"] for r in records] == ["push", "push", "tag_push", "tag_push", "project_create",
                                            "project_update", "project_transfer", "project_destroy"]
    assert {r["project_id"] for r in records} == {p.id}
    assert records[0]["after"] == second
    assert records[3]["after"] == ZERO_SHA
    assert records[2]["checkout_sha"] == second
    assert "checkout_sha" not in records[3]


@pytest.mark.parametrize("payload", [
    _fixture("gitlab-merge-request.json"),
    {"object_kind": "pipeline", "project": {"id": 3}},
    {"event_name": "user_create", "user_id": 41, "email": "js@gitlabhq.com"},
    {"event_name": "group_rename", "group_id": 64},
])
def test_other_events_are_acknowledged_and_ignored(counted: InstrumentedStore, client: Client, payload: Any) -> None:
    resp = _post(client, payload)
    assert resp.status_code == 200
    assert json.loads(resp.body) == {"status": "ignored"}
    assert counted.total == 0


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[1, 2]", b'"push"', b"{}",
    json.dumps({"object_kind": "push"}).encode(),  # no project
    json.dumps({"object_kind": "push", "project_id": "15"}).encode(),
    json.dumps({"object_kind": "push", "project_id": True}).encode(),
    json.dumps({"object_kind": "push", "project_id": -1}).encode(),
    json.dumps({"object_kind": "push", "project_id": 15, "ref": ["refs/heads/main"]}).encode(),
    json.dumps({"object_kind": "push", "project_id": 15, "ref": "r" * 5000}).encode(),
    json.dumps({"object_kind": 7, "project_id": 15}).encode(),
    b'{"object_kind": "push", "project_id": 15, "x": ' + b"[" * 200 + b"]" * 200 + b"}",
    b'{"object_kind": "push", "project_id": 15, "x": "' + b"a" * (7 << 20) + b'"}',
])
def test_bad_payloads_are_400_and_write_nothing(counted: InstrumentedStore, client: Client, body: bytes) -> None:
    resp = _post(client, body, event="Push Hook")
    assert resp.status_code == 400
    assert json.loads(resp.body)["message"].startswith("400 Bad request")
    assert counted.calls["PUT"] == 0
    assert not _records(counted)


def test_redelivery_writes_a_record_per_delivery(counted: InstrumentedStore, client: Client) -> None:
    """Each delivery is its own create-only record (none overwrites another); processing converges on GitLab."""
    for _ in range(3):
        assert _post(client, _fixture("gitlab-tag-push.json")).status_code == 200
    keys = [r["_key"] for r in _records(counted)]
    assert len(keys) == len(set(keys)) == 3
