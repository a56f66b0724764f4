"""Registry state -> STAC items in ``collections/ai-model/items/`` (writing one publishes it).

``publish_version`` always rebuilds from the current records and files, never from an event's
content, so replayed, duplicated and out-of-order events converge. Which versions an event
concerns is ``targets``: a version record -> that version and its live neighbours (their
predecessor/successor links change); a model record -> all its versions; a source marker or a
model file landing (``MLmodel``, ``*.onnx``) -> the versions whose artifact location holds it.

A version is published once its artifact location holds an ``MLmodel`` or ``.onnx`` file; until
then it is pending and has no item. Deleted versions are unpublished, unless the version or the
model carries the tag ``stac.keep_deleted=true``: then the item stays, marked ``deprecated``.
Archived versions and versions tagged ``deprecated=true`` are published as deprecated.
"""
from __future__ import annotations

import hashlib
import logging
import posixpath
import re
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import quote

from ..bounds import load_json
from ..stac import mlm
from ..stac.model_items import COLLECTION, Dataset, ModelFacts, ModelFile, Urls, build_item, item_id
from ..store import NotFound, ObjectInfo, ObjectStore, PreconditionFailed
from . import records as rec
from .lineage import Tracking, key_values, tags_of
from .records import ModelVersion, RegisteredModel
from .sources import ARTIFACTS_PREFIX, artifact_prefix

log = logging.getLogger(__name__)

PUBLIC_URL_KEY = rec.PREFIX + "public-url.json"  # the base URL the service was last reached at
DERIVED = rec.PREFIX + "derived/"  # per-file facts (checksum, ONNX signature) cached by ETag
MODEL_SUFFIXES = (".onnx", ".pt2", ".pt", ".pth", ".pkl", ".pickle", ".joblib", ".safetensors", ".keras", ".h5")
_CHECKSUM_LIMIT = 1 << 30  # hash files up to 1 GiB (read once per ETag, then cached)
_STRUCTURAL = {"root", "parent", "collection", "self"}
_ITEM_URL = re.compile(r"/collections/([A-Za-z0-9_.-]+)/items/([A-Za-z0-9_.:@~+=,-]+?)(?:\.json)?(?:[?#]|$)")


def item_key(name: str, version: int) -> str:
    return f"collections/{COLLECTION}/items/{item_id(name, version)}.json"


@dataclass
class Context:
    store: ObjectStore
    tracking: Tracking | None
    public_url: str | None = None  # settings; else the stored base URL
    gitlab_url: str | None = None

    def base_url(self) -> str | None:
        if self.public_url:
            return self.public_url.rstrip("/")
        try:
            return str(self.store.get_json(PUBLIC_URL_KEY)["url"]).rstrip("/")
        except (NotFound, KeyError, TypeError):
            return None


def remember_base_url(store: ObjectStore, url: str) -> None:
    """Store the base URL the API is reached at, for links written by event functions (no request there)."""
    try:
        if store.get_json(PUBLIC_URL_KEY).get("url") == url:
            return
    except NotFound:
        pass
    store.put_json(PUBLIC_URL_KEY, {"url": url})


# -- which versions an event concerns ----------------------------------------------------
def _listed(mv: ModelVersion, rm: RegisteredModel) -> bool:
    """Whether the version belongs in the catalog (live, or deleted but kept as deprecated)."""
    return not mv.deleted or "true" in (mv.tags.get("stac.keep_deleted"), rm.tags.get("stac.keep_deleted"))


def neighbours(store: ObjectStore, rm: RegisteredModel, number: int) -> tuple[int | None, int | None]:
    """Nearest listed versions below and above ``number``.

    Numbers have no gaps, so probing one by one stops at the first absent number.
    """
    below = None
    for n in range(number - 1, 0, -1):
        mv = rec.load_version(store, rm.name, n)
        if mv is None or _listed(mv, rm):
            below = n if mv is not None else None
            break
    above, n = None, number + 1
    while (mv := rec.load_version(store, rm.name, n)) is not None:
        if _listed(mv, rm):
            above = n
            break
        n += 1
    return below, above


def targets(store: ObjectStore, key: str) -> set[tuple[str, int]]:
    """The (model, version) pairs whose items an event on ``key`` may change."""
    parsed = rec.parse_registry_key(key)
    if parsed is not None:
        kind, name, rest = parsed
        if kind == "versions" and rest.isdigit():
            number = int(rest)
            out = {(name, number)}
            rm = rec.load_model(store, name)
            if rm is not None:
                out.update((name, n) for n in neighbours(store, rm, number) if n)
            return out
        if kind == "models":
            prefix = rec.versions_prefix(name)
            return {(name, int(info.key[len(prefix):-len(".json")])) for info in store.list(prefix)}
        return set()
    if key.startswith(rec.SOURCES):
        marker = rec.parse_source_marker(key)
        return {marker} if marker else set()
    if key.startswith(ARTIFACTS_PREFIX) or not key.startswith(rec.PREFIX):
        return _versions_backed_by(store, key)
    return set()


def _versions_backed_by(store: ObjectStore, artifact_key: str) -> set[tuple[str, int]]:
    """Versions whose artifact location is an ancestor of ``artifact_key`` (one LIST per ancestor)."""
    out: set[tuple[str, int]] = set()
    parent = posixpath.dirname(artifact_key)
    while parent:
        for info in store.list(rec.source_marker_prefix(parent)):
            marker = rec.parse_source_marker(info.key)
            if marker:
                out.add(marker)
        parent = posixpath.dirname(parent)
    return out


# -- building ------------------------------------------------------------------------------
def _file_facts(ctx: Context, info: ObjectInfo) -> dict[str, Any]:
    """Checksum (and ONNX signature) of a model file, computed once per ETag."""
    cache_key = DERIVED + info.key + ".json"
    try:
        cached = ctx.store.get_json(cache_key)
        if cached.get("etag") == info.etag:
            return cached  # type: ignore[no-any-return]
    except NotFound:
        pass
    facts: dict[str, Any] = {"etag": info.etag, "size": info.size}
    if info.size <= _CHECKSUM_LIMIT:
        body = ctx.store.get(info.key).body
        facts["checksum"] = "1220" + hashlib.sha256(body).hexdigest()  # multihash: sha2-256, 32 bytes
        if info.key.lower().endswith(".onnx"):
            try:
                facts["onnx"] = mlm.onnx_signature(body)
            except Exception as err:  # a corrupt upload must not block the rest of the item
                log.warning("unreadable ONNX file %s: %s", info.key, err)
    ctx.store.put_json(cache_key, facts)
    return facts


def _href(ctx: Context, base: str | None, key: str) -> str:
    if key.startswith(ARTIFACTS_PREFIX) and base:
        return f"{base}/mlflow/api/2.0/mlflow-artifacts/artifacts/{quote(key[len(ARTIFACTS_PREFIX):])}"
    return ctx.store.url(key)


def _datasets(ctx: Context, run: dict[str, Any] | None, urls: Urls) -> list[Dataset]:
    """Training datasets logged with log_input that are items of the catalog."""
    out: list[Dataset] = []
    for entry in ((run or {}).get("inputs") or {}).get("dataset_inputs") or []:
        ds = entry.get("dataset") or {}
        for cid, iid in _catalogued_candidates(ds):
            try:
                item = ctx.store.get_json(f"collections/{cid}/items/{iid}.json")
            except NotFound:
                continue
            props = item.get("properties") or {}
            href = (f"{urls.base}/stac/collections/{cid}/items/{iid}" if urls.base
                    else f"../../{cid}/items/{iid}.json")
            bbox = item.get("bbox")
            out.append(Dataset(href=href, title=str(props.get("title") or iid),
                               bbox=[float(v) for v in (bbox[0], bbox[1], bbox[-2], bbox[-1])] if bbox else None,
                               start=props.get("start_datetime") or props.get("datetime"),
                               end=props.get("end_datetime") or props.get("datetime")))
            break
    return out


def _catalogued_candidates(ds: dict[str, Any]) -> list[tuple[str, str]]:
    """Where a logged dataset may sit in the catalog: a STAC item URL in its source, else its name in ``dataset``."""
    found: list[tuple[str, str]] = []
    source = ds.get("source") or ""
    try:
        doc = load_json(source, what="the source") if isinstance(source, str) and source.startswith("{") else {}
    except ValueError:  # InputBoundError too: a source is user input, nested however deep
        doc = {}
    texts = [str(v) for v in doc.values()] if isinstance(doc, dict) else []
    texts.append(str(source))
    for text in texts:
        match = _ITEM_URL.search(text)
        if match:
            found.append((match.group(1), match.group(2)))
    if ds.get("name"):
        found.append(("dataset", str(ds["name"])))
    return found


def _mlmodel(ctx: Context, key: str) -> dict[str, Any]:
    import yaml
    try:
        doc = yaml.safe_load(ctx.store.get(key).body)
    except (NotFound, yaml.YAMLError, RecursionError):  # an uploaded file: nested however deep
        return {}
    return doc if isinstance(doc, dict) else {}


def gather(ctx: Context, rm: RegisteredModel, mv: ModelVersion, urls: Urls) -> ModelFacts | None:
    """Everything the item is built from, or None while the version's files have not landed."""
    prefix = artifact_prefix(ctx.store, mv.storage_location)
    if prefix is None:
        return None
    infos = list(ctx.store.list(prefix + "/"))
    rel = {info.key[len(prefix) + 1:]: info for info in infos}
    if "MLmodel" not in rel and not any(p.lower().endswith(".onnx") for p in rel):
        return None
    base = urls.base
    mlmodel = _mlmodel(ctx, rel["MLmodel"].key) if "MLmodel" in rel else {}
    flavors = mlmodel.get("flavors") or {}
    onnx_primary = ((flavors.get("onnx") or {}).get("data")) or None

    files: list[ModelFile] = []
    onnx_sig: dict[str, Any] | None = None
    for path in sorted(rel):
        info = rel[path]
        if path.lower().endswith(MODEL_SUFFIXES):
            facts = _file_facts(ctx, info)
            files.append(ModelFile(path=path, href=_href(ctx, base, info.key), size=info.size,
                                   checksum=facts.get("checksum"), artifact_type=mlm.artifact_type(path, flavors)))
            if facts.get("onnx") and (onnx_sig is None or path == onnx_primary):
                onnx_sig = facts["onnx"]
        elif path == "MLmodel":
            files.append(ModelFile(path=path, href=_href(ctx, base, info.key), size=info.size))

    if not any(f.artifact_type for f in files):
        # No weights file we recognise: the MLflow model directory (entered by its MLmodel) is the model.
        for f in files:
            if f.path == "MLmodel":
                f.artifact_type = "mlflow.pyfunc"
    tracking = ctx.tracking
    run = tracking.get_run(mv.run_id) if tracking and mv.run_id else None
    logged = tracking.get_logged_model(mv.model_id) if tracking and mv.model_id else None
    experiment_id = str(((run or {}).get("info") or {}).get("experiment_id")
                        or ((logged or {}).get("info") or {}).get("experiment_id") or "")
    experiment = tracking.get_experiment(experiment_id) if tracking and experiment_id else None
    run_tags = tags_of(run)
    tags = {**tags_of(experiment), **run_tags, **rm.tags, **mv.tags}  # most specific wins
    params = {**key_values(((run or {}).get("data") or {}).get("params")),
              **key_values(((logged or {}).get("data") or {}).get("params"))}
    metrics = {**key_values(((run or {}).get("data") or {}).get("metrics")),
               **key_values(((logged or {}).get("data") or {}).get("metrics"))}
    project = rm.tags.get("project") or tags_of(experiment).get("project")
    gitlab = None
    if project and ctx.gitlab_url:
        gitlab = f"{ctx.gitlab_url.rstrip('/')}/{project.strip('/')}"

    below, above = neighbours(ctx.store, rm, mv.version)
    return ModelFacts(
        name=mv.name, version=mv.version, created_ms=mv.creation_timestamp, updated_ms=mv.last_updated_timestamp,
        description=mv.description or rm.description, stage=mv.current_stage, aliases=list(mv.aliases),
        tags=tags, deprecated=(mv.deleted or mv.current_stage == "Archived"
                               or tags.get("deprecated", "").lower() == "true"),
        run_id=mv.run_id, experiment_id=experiment_id, model_id=mv.model_id, params=params, metrics=metrics,
        mlmodel=mlmodel, onnx=onnx_sig, files=files, datasets=_datasets(ctx, run, urls), gitlab_project=gitlab,
        neighbours={"predecessor": item_id(mv.name, below) if below else None,
                    "successor": item_id(mv.name, above) if above else None})


def _comparable(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "links": [link for link in item.get("links", []) if link.get("rel") not in _STRUCTURAL]}


def _build(ctx: Context, name: str, number: int) -> tuple[str, dict[str, Any] | None]:
    """(outcome, item) from the current records: the item, or None with why there is none."""
    rm = rec.load_model(ctx.store, name)
    mv = rec.load_version(ctx.store, name, number)
    if rm is None or mv is None or not _listed(mv, rm):
        return "removed", None
    mv.aliases = sorted(a for a, v in rec.load_aliases(ctx.store, name).items() if v == number)
    urls = Urls(ctx.base_url())
    facts = gather(ctx, rm, mv, urls)
    return ("published", build_item(facts, urls)) if facts else ("pending", None)


def publish_version(ctx: Context, name: str, number: int, attempts: int = 20) -> str:
    """Bring the version's item in line with the current records: published, unchanged, pending or removed.

    The item's ETag is read before the records and the write is conditional on it, so of two
    concurrent rebuilds (parallel event batches) one built from older records cannot overwrite the
    other: it loses the race, re-reads and rebuilds.
    """
    key = item_key(name, number)
    for _ in range(attempts):
        try:
            current = ctx.store.get(key)
        except NotFound:
            current = None
        outcome, item = _build(ctx, name, number)
        try:
            if item is None:
                if current is not None:
                    ctx.store.delete(key, if_match=current.etag)
                return outcome
            if current is not None and _comparable(current.json()) == _comparable(item):
                return "unchanged"
            if current is None:
                ctx.store.put_json(key, item, if_none_match=True)
            else:
                ctx.store.put_json(key, item, if_match=current.etag)
            return outcome
        except PreconditionFailed:
            continue
    raise PreconditionFailed(f"too much contention publishing {key}")


def publish_keys(ctx: Context, keys: Iterable[str]) -> dict[str, str]:
    """Republish every version the changed keys concern (each once)."""
    todo: set[tuple[str, int]] = set()
    for key in dict.fromkeys(keys):
        todo |= targets(ctx.store, key)
    return {item_id(name, n): publish_version(ctx, name, n) for name, n in sorted(todo)}


def latest_published(store: ObjectStore, name: Any) -> str | None:
    """Item id of the newest version of ``name`` that has an item (the ``latest-version`` target)."""
    from .service import check_name
    name = check_name(name)
    numbers = [int(info.key.rsplit("/", 1)[1][:-len(".json")]) for info in store.list(rec.versions_prefix(name))]
    for number in sorted(numbers, reverse=True):
        mv = rec.load_version(store, name, number)
        if mv is not None and not mv.deleted and store.exists(item_key(name, number)):
            return item_id(name, number)
    return None
