"""Datasets function: GitLab change records -> the projects' items; DVC remote objects -> assets available.

Keys: change records ``datasets/changes/<project_id>/<ns>-<rand>.json`` (written by the webhook) ->
``datasets.publication.sync_changes``, which reads the project's current state from GitLab and
writes or deletes its items under ``collections/<cid>/items/`` (each write publishes through the
catalog function); objects landing in a configured DVC remote (``s3://bucket/key``, see
``notifications.parse_s3_event``) -> ``datasets.availability``, which marks the assets backed by
them available once their size checks out.
"""
from __future__ import annotations

import logging

from .base import EventServices, Route, StoreEvent

log = logging.getLogger(__name__)

CHANGE_KEY = r"^datasets/changes/\d+/[^/]+\.json$"
REMOTE_OBJECT = r"^s3://"  # no store key starts so: "//" is an empty segment, which check_key refuses


def on_change_records(services: EventServices, events: list[StoreEvent]) -> None:
    from ..datasets.publication import sync_changes
    created = [ev.key for ev in events if ev.created]  # the record's own removal after processing: nothing to do
    if created:
        sync_changes(services.dataset_context(), created)


def on_remote_objects(services: EventServices, events: list[StoreEvent]) -> None:
    from ..datasets.availability import object_landed
    urls = list(dict.fromkeys(ev.key for ev in events if ev.created))
    if urls:
        ctx = services.dataset_context()
        for url in urls:  # the object is HEADed again there: its size is checked against the item's
            object_landed(ctx.store, ctx.remote, url)


ROUTES: list[Route] = [(CHANGE_KEY, on_change_records), (REMOTE_OBJECT, on_remote_objects)]
