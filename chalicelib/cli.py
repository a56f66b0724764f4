"""``stacflow`` command line: serve, publish, reindex, check, export, geoparquet, replay-events, repair-logs,
republish-models, publish-ui."""
from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

from . import services
from .settings import Settings


def _use_store(uri: str | None) -> Settings:
    """The process's services over ``--store`` (else ``STACFLOW_STORE``), other settings from the environment."""
    cfg = Settings.from_env()
    if uri:
        cfg = dataclasses.replace(cfg, store_uri=uri)
    services.configure(settings=cfg)
    return cfg


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = _use_store(args.store)
    from .stac.catalog import ensure_root
    # Fails fast on a bad store URI, before binding the port; a new store is browsable at once.
    ensure_root(services.store())
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from app import app

    from .http.local_server import make_server
    server = make_server(app, args.host, args.port)
    public = _public_url(args, cfg, server.server.server_address[1])
    if public:
        services.configure(settings=dataclasses.replace(cfg, public_url=public))  # the store reopens on first use
    _watch_geoparquet()
    _tune_gc()
    print(f"stacflow serving {services.settings().store_uri} on "
          f"http://{args.host}:{server.server.server_address[1]}", flush=True)
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        server.server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def _interrupted(signum: int, frame: Any) -> None:
    """SIGTERM stops the server as Ctrl-C does: its deferred access lines are written at exit."""
    raise KeyboardInterrupt


def _tune_gc() -> None:
    """A server holds large long-lived structures (folded tracking logs, the search index) and each
    request allocates thousands of short-lived containers: with the default threshold (700) the
    collector ran ~11 times per search over 10,000 runs and a full pass over the heap every ~10
    searches (~90 ms each), a third of a search's CPU. Collect young objects every 10,000 allocations
    instead (cycles are rare: refcounting frees the rest), and leave what start-up built out of
    every pass."""
    import gc
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def _watch_geoparquet() -> None:
    """Keep the store's stac-geoparquet files current while serving (when the package is installed)."""
    from importlib.util import find_spec
    if find_spec("stac_geoparquet") is None:
        print("stacflow: stac-geoparquet not installed, collections/<cid>/geoparquet/ is not kept current "
              "(pip install -r requirements-geoparquet.txt)", file=sys.stderr)
        return
    from .stac.geoparquet import Refresher
    Refresher(services.store(), public_url=services.settings().public_url).start()


def _public_url(args: argparse.Namespace, cfg: Settings, port: int) -> str | None:
    """``--public-url``, else ``STACFLOW_PUBLIC_URL``, else the bound address when it is loopback
    and no proxy is trusted: then it is the only address clients can use, so stored links may say so."""
    explicit = args.public_url or cfg.public_url
    if explicit or cfg.trusted_proxies:
        return explicit
    import ipaddress
    host = args.host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return None
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _few_malloc_arenas() -> None:
    """glibc gives threads their own malloc arenas, each keeping freed batches resident: bulk
    publishing's writer threads would hold ~10% more memory (M_ARENA_MAX, as MALLOC_ARENA_MAX=2)."""
    import ctypes
    try:
        ctypes.CDLL(None).mallopt(-8, 2)  # M_ARENA_MAX; threads started later share the 2 arenas
    except (OSError, AttributeError):
        pass  # not glibc


def _more_open_files() -> None:
    """The local store's bulk writes hold up to half the open-file limit of unnamed files at once
    (a round per ``syncfs``): raise the soft limit to the hard one (some systems start at 1,024)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65_536
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, 65_536), hard))
        except (ValueError, OSError):
            pass  # smaller rounds, more syncs: still correct


def cmd_publish(args: argparse.Namespace) -> int:
    _use_store(args.store)
    _few_malloc_arenas()
    _more_open_files()
    from .stac.publish import publish_paths
    report = publish_paths(services.store(), [Path(p) for p in args.paths], progress=not args.quiet,
                           collection=args.collection)
    print(json.dumps(report.as_dict()))
    return 0 if not report.rejected else 1


def cmd_reindex(args: argparse.Namespace) -> int:
    _use_store(args.store)
    from .stac.publish import reindex
    report = reindex(services.store(), collection=args.collection, progress=not args.quiet)
    print(json.dumps(report.as_dict()))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Everything derived against its source records; read-only, so safe while the service runs."""
    _use_store(args.store)
    from .registry.repair import check as check_registry
    from .stac.check import Problem, check_catalog, check_derived
    store = services.store()
    report = check_catalog(store)  # the static catalog as a STAC client walks it
    check_derived(store, report)  # shards, extents and search index against the item JSONs
    report.problems += [Problem(key, problem) for key, problem in check_registry(services.publication_context())]
    report.problems += [Problem(prefix, "tracking snapshot differs from its log entries (`stacflow repair-logs "
                                        "--all` refolds it)") for prefix in services.tracking().check_logs()]
    report.problems = list(dict.fromkeys(report.problems))  # one line per (key, problem)
    print(json.dumps(report.as_dict()))
    return 0 if not report.problems else 1


def _geoparquet_missing() -> bool:
    from importlib.util import find_spec
    if find_spec("stac_geoparquet") is None or find_spec("pyarrow") is None:
        print("stacflow: stac-geoparquet is not installed (pip install -r requirements-geoparquet.txt)",
              file=sys.stderr)
        return True
    return False


def cmd_export(args: argparse.Namespace) -> int:
    """The catalog's public items, from the search index, as stac-geoparquet files on this machine."""
    cfg = _use_store(args.store)
    if _geoparquet_missing():
        return 1
    from tqdm import tqdm

    from .stac import catalog, geoparquet
    from .stac.index import SearchIndex
    if args.collection and args.collection not in catalog.config().collection_ids:
        print(f"stacflow export: unknown collection {args.collection!r}", file=sys.stderr)
        return 1
    with tqdm(desc="export", unit="item", disable=args.quiet, mininterval=0.5) as bar:
        def total(n: int) -> None:
            bar.total = n
            bar.refresh()
        done = geoparquet.export(services.store(), SearchIndex(services.store()), args.out,
                                 collections=[args.collection] if args.collection else None,
                                 public_url=cfg.public_url, progress=bar.update, on_total=total)
    print(json.dumps(done))
    return 0


def cmd_geoparquet(args: argparse.Namespace) -> int:
    """Regenerate the store's stac-geoparquet files now (what the scheduled function does)."""
    cfg = _use_store(args.store)
    if _geoparquet_missing():
        return 1
    from .stac import geoparquet
    from .stac.index import SearchIndex
    results = geoparquet.regenerate_all(services.store(), SearchIndex(services.store()), public_url=cfg.public_url,
                                        collections=[args.collection] if args.collection else None,
                                        force=args.force)
    print(geoparquet.summary(results))
    return 0


def cmd_replay_events(args: argparse.Namespace) -> int:
    _use_store(args.store)
    from .events.dispatch import handle_notification
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    docs = [json.loads(line) for line in text.splitlines() if line.strip()] if args.file.endswith(
        ".ndjson") else [json.loads(text)]
    routed = 0
    for doc in docs:
        routed += handle_notification(doc, services.root())
    print(json.dumps({"routed": routed}))
    return 0


def cmd_repair_logs(args: argparse.Namespace) -> int:
    _use_store(args.store)
    from .mlflowapi.errors import MlflowError
    try:
        report = services.tracking().repair_logs(run_id=args.run, experiment_id=args.experiment)
    except MlflowError as err:
        print(f"stacflow repair-logs: {err.message}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


def cmd_republish_models(args: argparse.Namespace) -> int:
    _use_store(args.store)
    from .registry.repair import repair
    print(json.dumps(repair(services.publication_context())))
    return 0


def cmd_publish_ui(args: argparse.Namespace) -> int:
    _use_store(args.store)
    from .settings import BUILT_UI
    from .ui.publish import publish_site
    root = Path(args.source) if args.source else BUILT_UI
    names = args.names or (sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
    if not names:
        print(f"stacflow publish-ui: no built UI under {root} (run make setup)", file=sys.stderr)
        return 1
    for name in names:
        print(json.dumps(publish_site(services.store(), name, root / name, prune=args.prune).as_dict()), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stacflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    store_help = "file://PATH (default ./data) or s3://BUCKET[/PREFIX]; default $STACFLOW_STORE"

    p = sub.add_parser("serve", help="run the HTTP service (STAC API, MLflow API)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--store", help=store_help)
    p.add_argument("--public-url", help="the URL clients reach the service at, used in stored links "
                                        "(default $STACFLOW_PUBLIC_URL, or the bound address when it is loopback)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("publish", help="publish item JSON files, folders or NDJSON files")
    p.add_argument("--store", help=store_help)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--collection", help="collection of the items that do not name one")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("reindex", help="rebuild catalog pages and the search index from the item JSONs "
                                       "(safe while others publish)")
    p.add_argument("--store", help=store_help)
    p.add_argument("--collection", help="only this collection")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_reindex)

    p = sub.add_parser("check", help="compare everything derived with its source records: the static catalog "
                                     "(walked with pystac), shards, extents, search index, registry items and "
                                     "index, tracking snapshots; read-only")
    p.add_argument("--store", help=store_help)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("export", help="write the catalog's public items as stac-geoparquet files, one per "
                                      "collection, with a progress bar")
    p.add_argument("--store", help=store_help)
    p.add_argument("--format", choices=["geoparquet"], default="geoparquet")
    p.add_argument("--collection", help="only this collection (OUT may then be a .parquet file)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("out", metavar="OUT", help="a folder (one <collection>.parquet each) or, with --collection, "
                                             "a .parquet file")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("geoparquet", help="regenerate the store's stac-geoparquet files "
                                          "(collections/<cid>/geoparquet/) where the catalog changed")
    p.add_argument("--store", help=store_help)
    p.add_argument("--collection", help="only this collection")
    p.add_argument("--force", action="store_true", help="rewrite even if current")
    p.set_defaults(func=cmd_geoparquet)

    p = sub.add_parser("replay-events", help="feed S3 notification JSON (Lambda or SQS format) to the functions")
    p.add_argument("--store", help=store_help)
    p.add_argument("file", help="a JSON event, an .ndjson file of events, or - for stdin")
    p.set_defaults(func=cmd_replay_events)

    p = sub.add_parser("repair-logs", help="refold MLflow tracking logs from all their entries, ignoring snapshots")
    p.add_argument("--store", help=store_help)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", metavar="ID", help="one run's log and its experiment's")
    which.add_argument("--experiment", metavar="ID", help="one experiment's log and its runs' logs")
    which.add_argument("--all", action="store_true", help="every experiment's and run's log")
    p.set_defaults(func=cmd_repair_logs)

    p = sub.add_parser("republish-models", help="repair the model registry after crashes or lost events and "
                                                 "republish every model version")
    p.add_argument("--store", help=store_help)
    p.set_defaults(func=cmd_republish_models)

    p = sub.add_parser("publish-ui", help="upload the built web UIs (build/ui/<name>/) into the store's ui/<name>/, "
                                           "where the service reads them when STACFLOW_UI=store (AWS)")
    p.add_argument("--store", help=store_help)
    p.add_argument("--source", help="the folder holding <name>/ builds (default build/ui)")
    p.add_argument("--prune", action="store_true", help="delete published files the build no longer has")
    p.add_argument("names", nargs="*", help="which UIs (default: every folder of --source)")
    p.set_defaults(func=cmd_publish_ui)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
