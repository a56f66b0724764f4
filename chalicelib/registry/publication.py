"""Registry state -> STAC items in ``collections/ai-model/items/`` (writing one publishes it).

``publish_version`` always rebuilds from the current records and files, never from an event's
content, so replayed, duplicated and out-of-order events converge. Which versions an event
concerns is ``targets``: a version record -> that version and its live neighbours (their
predecessor/successor links change); a model record -> all its versions; a source marker or a
model file landing (``MLmodel``, ``*.onnx``) -> the versions whose artifact location holds it.
A version record's event also writes the version's source marker if it is missing (the writer
may have crashed in between), so files landing later still find the version.

Links: nothing derived from a request is stored. With ``STACFLOW_PUBLIC_URL`` set, items carry
absolute links to the API (assets through the artifact proxy, MLflow run/model pages, the
``latest-version`` resolver); without it, links and asset hrefs are relative to the item's place
in the static catalog (``../../../mlflow-artifacts/...``), which the STAC API resolves per request
(``stac.hrefs``), and links that only the API could answer are left out.

Items carry their model's uid (``mlflow:registered_model_id``): items published under a name the
model no longer has (a rename, a delete) are removed only if they are still the model's.

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
from ..mlflowapi.validation import model_name
from ..settings import DEFAULT_ONNX_INSPECT_LIMIT
from ..stac import mlm
from ..stac.model_items import COLLECTION, OWNER, Dataset, ModelFacts, ModelFile, Urls, build_item, item_id
from ..store import NotFound, ObjectInfo, ObjectStore, PreconditionFailed
from ..tracking.entities import Run, json_float
from . import records as rec
from .index import RegistryIndex
from .core import RegistryCore
from .lineage import Tracking
from .records import ModelVersion, RegisteredModel
from .sources import ARTIFACTS_PREFIX, artifact_prefix, mark_source

log = logging.getLogger(__name__)

DERIVED = rec.PREFIX + "derived/"  # per-file facts (checksum, ONNX signature) cached by ETag
MODEL_SUFFIXES = (".onnx", ".pt2", ".pt", ".pth", ".pkl", ".pickle", ".joblib", ".safetensors", ".keras", ".h5")
_CHECKSUM_LIMIT = 1 << 30  # hash files up to 1 GiB (streamed, once per ETag, then cached)
MLMODEL_LIMIT = 1 << 20  # an MLmodel is a few KB of YAML; a bigger one is not parsed
_STRUCTURAL = {"root", "parent", "collection", "self"}
_ITEM_URL = re.compile(r"/collections/([A-Za-z0-9_.-]+)/items/([A-Za-z0-9_.:@~+=,-]+?)(?:\.json)?(?:[?#]|$)")


def item_key(name: str, version: int, *, private: bool = False) -> str:
    """The version's item key; ``private``: under the private prefix, out of the static catalog."""
    from ..stac import catalog
    return catalog.item_key(COLLECTION, item_id(name, version), private=private)


def _private(rm: RegisteredModel) -> bool:
    """A model owned by a GitLab project publishes out of the static catalog: its items do not record
    the project's visibility, so they are not public (fail closed; chalicelib.stac.access)."""
    return bool(rm.tags.get("stacflow.project"))


@dataclass
class Context:
    store: ObjectStore
    tracking: Tracking | None
    public_url: str | None = None  # configured (STACFLOW_PUBLIC_URL); never taken from a request
    gitlab_url: str | None = None
    onnx_inspect_limit: int = DEFAULT_ONNX_INSPECT_LIMIT  # bigger ONNX files are hashed, not parsed

    def base_url(self) -> str | None:
        return self.public_url.rstrip("/") if self.public_url else None


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
        mv = rec.load_version(store, rm.uid, rm.name, n)
        if mv is None or _listed(mv, rm):
            below = n if mv is not None else None
            break
    above, n = None, number + 1
    while (mv := rec.load_version(store, rm.uid, rm.name, n)) is not None:
        if _listed(mv, rm):
            above = n
            break
        n += 1
    return below, above


def targets(store: ObjectStore, key: str) -> set[tuple[str, int]]:
    """The (model uid, version) pairs whose items an event on ``key`` may change."""
    parsed = rec.parse_registry_key(key)
    if parsed is not None:
        kind, uid, number = parsed
        if kind == "versions" and number is not None:
            out = {(uid, number)}
            rm = rec.load_model(store, uid)
            if rm is not None:
                out.update((uid, n) for n in neighbours(store, rm, number) if n)
            return out
        prefix = rec.versions_prefix(uid)
        return {(uid, rec.version_number(info.key)) for info in store.list(prefix)}
    if key.startswith(rec.SOURCES):
        marker = rec.parse_source_marker(key)
        return {marker} if marker else set()
    if key.startswith(ARTIFACTS_PREFIX) or not key.startswith(rec.PREFIX):
        return _versions_backed_by(store, key)
    return set()


def ensure_source_marker(store: ObjectStore, rm: RegisteredModel, number: int) -> bool:
    """Write the live version's source marker if it is missing; whether one was written."""
    mv = rec.load_version(store, rm.uid, rm.name, number)
    if not rm.active or mv is None or mv.deleted:
        return False
    return mark_source(store, rm.uid, mv, only_if_missing=True)


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
    facts = read_file_facts(ctx.store, info.key, onnx_limit=ctx.onnx_inspect_limit)
    ctx.store.put_json(cache_key, facts)
    return facts


def read_file_facts(store: ObjectStore, key: str, *, onnx_limit: int) -> dict[str, Any]:
    """ETag, size, sha2-256 multihash and, for an ``.onnx`` file up to ``onnx_limit`` bytes, its graph's
    signature, read as one stream: memory stays at one chunk, or at the ONNX file's size when parsed."""
    with store.open(key) as reader:
        facts: dict[str, Any] = {"etag": reader.etag, "size": reader.size}
        if reader.size > _CHECKSUM_LIMIT:
            return facts
        digest = hashlib.sha256()
        if key.lower().endswith(".onnx") and reader.size <= onnx_limit:
            body = reader.read()
            digest.update(body)
            try:
                facts["onnx"] = mlm.onnx_signature(body)
            except Exception as err:  # a corrupt upload must not block the rest of the item
                log.warning("unreadable ONNX file %s: %s", key, err)
        else:
            for chunk in reader.chunks():
                digest.update(chunk)
    facts["checksum"] = "1220" + digest.hexdigest()  # multihash: sha2-256, 32 bytes
    return facts


def _href(ctx: Context, base: str | None, key: str) -> str:
    """An asset's href: the artifact proxy's URL under a public base, else relative to the item's
    place in the static catalog (``collections/<cid>/items/``), which the STAC API resolves."""
    if not base:
        return "../../../" + quote(key)
    if key.startswith(ARTIFACTS_PREFIX):
        return f"{base}/mlflow/api/2.0/mlflow-artifacts/artifacts/{quote(key[len(ARTIFACTS_PREFIX):])}"
    return ctx.store.url(key)


def _datasets(ctx: Context, run: Run | None, urls: Urls) -> list[Dataset]:
    """Training datasets logged with log_input that are items of the catalog."""
    out: list[Dataset] = []
    for entry in run.datasets if run else []:
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
        with ctx.store.open(key) as reader:
            if reader.size > MLMODEL_LIMIT:
                log.warning("MLmodel %s ignored: %d bytes, over %d", key, reader.size, MLMODEL_LIMIT)
                return {}
            doc = yaml.safe_load(reader.read())
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
    experiment_id = str((run.info.experiment_id if run else None) or (logged.experiment_id if logged else None) or "")
    experiment = tracking.get_experiment(experiment_id) if tracking and experiment_id else None
    experiment_tags = experiment.tags if experiment else {}
    tags = {**experiment_tags, **(run.tags if run else {}), **rm.tags, **mv.tags}  # most specific wins
    params = {**(run.params if run else {}), **(logged.params if logged else {})}
    # Values as the REST API gives them (non-finite ones as text): items are JSON. A key logged twice
    # with a model: its last value.
    metrics = {m.key: json_float(m.value) for m in [*(run.metrics if run else []), *(logged.metrics if logged else [])]}
    owner = rm.tags.get("stacflow.project") or None
    project = owner if owner and not owner.isdigit() else rm.tags.get("project") or experiment_tags.get("project")
    gitlab = None
    if project and ctx.gitlab_url:
        gitlab = f"{ctx.gitlab_url.rstrip('/')}/{project.strip('/')}"

    below, above = neighbours(ctx.store, rm, mv.version)
    return ModelFacts(
        name=mv.name, version=mv.version, model_uid=rm.uid, created_ms=mv.creation_timestamp,
        updated_ms=mv.last_updated_timestamp,
        description=mv.description or rm.description, stage=mv.current_stage, aliases=list(mv.aliases),
        tags=tags, deprecated=(mv.deleted or mv.current_stage == "Archived"
                               or tags.get("deprecated", "").lower() == "true"),
        run_id=mv.run_id, experiment_id=experiment_id, model_id=mv.model_id, params=params, metrics=metrics,
        mlmodel=mlmodel, onnx=onnx_sig, files=files, datasets=_datasets(ctx, run, urls), gitlab_project=gitlab,
        project=owner,
        neighbours={"predecessor": item_id(mv.name, below) if below else None,
                    "successor": item_id(mv.name, above) if above else None})


def _comparable(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "links": [link for link in item.get("links", []) if link.get("rel") not in _STRUCTURAL]}


def _build(ctx: Context, rm: RegisteredModel, uid: str, number: int) -> tuple[str, dict[str, Any] | None]:
    """(outcome, item) from the current records: the item, or None with why there is none."""
    mv = rec.load_version(ctx.store, uid, rm.name, number)
    if mv is None or not _listed(mv, rm):
        return "removed", None
    mv.aliases = sorted(a for a, v in rec.load_aliases(ctx.store, uid).items() if v == number)
    urls = Urls(ctx.base_url())
    facts = gather(ctx, rm, mv, urls)
    return ("published", build_item(facts, urls)) if facts else ("pending", None)


def owner_of(item: Any) -> str | None:
    props = item.get("properties") if isinstance(item, dict) else None
    return props.get(OWNER) if isinstance(props, dict) else None


def publish_version(ctx: Context, uid: str, number: int, attempts: int = 20) -> str:
    """Bring the version's item in line with the current records: published, unchanged, pending,
    removed or conflict (the item id is another model's: only a 64-bit hash collision does that).

    The item's ETag is read before the records and the write is conditional on it, so of two
    concurrent rebuilds (parallel event batches) one built from older records cannot overwrite the
    other: it loses the race, re-reads and rebuilds.
    """
    rm = rec.load_model(ctx.store, uid)
    if rm is None:
        return "removed"  # never created (a lost name claim): it had no items
    stale = set(rm.former_names) | (set() if rm.active else {rm.name})
    for name in stale:
        if not (rm.active and item_id(name, number) == item_id(rm.name, number)):
            _remove_own_item(ctx.store, item_key(name, number, private=_private(rm)), uid)
    if not rm.active:
        return "removed"
    key = item_key(rm.name, number, private=_private(rm))  # the owner tag never changes: nor does the prefix
    for _ in range(attempts):
        try:
            current = ctx.store.get(key)
        except NotFound:
            current = None
        latest = rec.load_model(ctx.store, uid)  # records are read after the item's ETag
        if latest is None or not latest.active or item_key(latest.name, number, private=_private(latest)) != key:
            return publish_version(ctx, uid, number, attempts)  # deleted or renamed meanwhile: start over
        outcome, item = _build(ctx, latest, uid, number)
        owner = owner_of(current.json()) if current is not None else None
        if current is not None and owner not in (None, uid) and holds_item(ctx.store, owner, key, number):
            log.error("item %s belongs to model %s, not %s: not overwritten", key, owner, uid)
            return "conflict"
        try:
            if item is None:
                if current is not None and owner in (None, uid):
                    ctx.store.delete(key, if_match=current.etag)
                return outcome
            if current is not None and _comparable(current.json()) == _comparable(item):
                outcome = "unchanged"
            elif current is None:
                ctx.store.put_json(key, item, if_none_match=True)
            else:
                ctx.store.put_json(key, item, if_match=current.etag)
        except PreconditionFailed:
            continue
        link_back(ctx, latest, number, item)
        return outcome
    raise PreconditionFailed(f"too much contention publishing {key}")


ITEM_URL_TAG = "stac.item_url"  # on a model version: its item's page in STAC Browser


def run_item_tag(iid: str) -> str:
    """The run's tag for the item of one version registered from it (a run may feed several)."""
    return f"{ITEM_URL_TAG}.{iid}"


def link_back(ctx: Context, rm: RegisteredModel, number: int, item: dict[str, Any]) -> None:
    """Tag the version and its run with the item's STAC Browser URL (only with a public URL: a
    request's host is never stored). The version's tag is a bookkeeping write: it leaves the
    version's update time alone, so the item (built from records, not from this tag) is unchanged
    and the event this write causes republishes nothing; a tag already right is never rewritten."""
    url = Urls(ctx.base_url()).browser(item["id"])
    if url is None:
        return

    changed: list[bool] = []

    def tag(doc: dict[str, Any]) -> dict[str, Any] | None:
        mv = ModelVersion.from_record(doc, rm.name)
        if mv.deleted or mv.tags.get(ITEM_URL_TAG) == url:
            return None
        mv.tags[ITEM_URL_TAG] = url
        changed[:] = [True]
        return mv.to_record()

    try:
        doc = ctx.store.update_json(rec.version_key(rm.uid, number), tag)
    except (NotFound, PreconditionFailed) as err:  # gone, or contended: its own event republishes it
        log.info("version %s v%s not tagged with its item: %s", rm.name, number, err)
        return
    if changed:
        RegistryCore(ctx.store).reindex(rm.uid, [number])  # tags are searchable
    mv = ModelVersion.from_record(doc, rm.name)
    run = ctx.tracking.get_run(mv.run_id) if ctx.tracking and mv.run_id else None
    if ctx.tracking and run is not None and run.tags.get(run_item_tag(item["id"])) != url:
        ctx.tracking.set_run_tag(run.info.run_id, run_item_tag(item["id"]), url)

def holds_item(store: ObjectStore, uid: str, key: str, number: int) -> bool:
    """Whether model ``uid`` is live and publishes version ``number`` at ``key``."""
    rm = rec.load_model(store, uid)
    return rm is not None and rm.active and item_key(rm.name, number, private=_private(rm)) == key


def _remove_own_item(store: ObjectStore, key: str, uid: str) -> None:
    """Delete the item at ``key`` if it is model ``uid``'s (a name may have passed to another model)."""
    try:
        current = store.get(key)
    except NotFound:
        return
    if owner_of(current.json()) == uid:
        try:
            store.delete(key, if_match=current.etag)
        except PreconditionFailed:
            pass  # rewritten meanwhile: by its new owner, or by a replay that removes it again


def publish_keys(ctx: Context, keys: Iterable[str]) -> dict[str, str]:
    """Republish every version the changed keys concern (each once); ``{"<uid>@<n>": outcome}``."""
    todo: set[tuple[str, int]] = set()
    reindex: dict[str, set[int]] = {}
    for key in dict.fromkeys(keys):
        parsed = rec.parse_registry_key(key)
        if parsed is not None:
            reindex.setdefault(parsed[1], set()).update([] if parsed[2] is None else [parsed[2]])
        if parsed is not None and parsed[2] is not None:  # a version record: its writer may have died before its marker
            rm = rec.load_model(ctx.store, parsed[1])
            if rm is not None:
                ensure_source_marker(ctx.store, rm, parsed[2])
        todo |= targets(ctx.store, key)
    # The search index is derived from the records as the items are: a writer that died (or lost the
    # swap) before its own refresh is caught up by its record's event. A refresh with nothing to
    # change writes nothing.
    index = RegistryIndex(ctx.store)
    for uid, numbers in sorted(reindex.items()):
        index.refresh(uid, sorted(numbers))
    return {f"{uid}@{n}": publish_version(ctx, uid, n) for uid, n in sorted(todo)}


def latest_published(store: ObjectStore, name: Any) -> str | None:
    """Item id of the newest version of ``name`` that has an item (the ``latest-version`` target)."""
    rm = rec.resolve(store, model_name(name))
    if rm is None:
        return None
    numbers = [rec.version_number(info.key) for info in store.list(rec.versions_prefix(rm.uid))]
    for number in sorted(numbers, reverse=True):
        mv = rec.load_version(store, rm.uid, rm.name, number)
        if mv is not None and not mv.deleted and store.exists(item_key(rm.name, number, private=_private(rm))):
            return item_id(rm.name, number)
    return None
