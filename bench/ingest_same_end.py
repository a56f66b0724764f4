"""A bulk load ends where another commit's does: ``stacflow publish`` of N generated items into an empty
store, then N more, with this checkout and with ``--baseline DIR`` (e.g. ``git archive <commit> | tar -x -C DIR``);
then item files compared byte for byte, the static catalog's documents compared but for their revisions,
a query mix searched in both stores (this checkout's reader), and ``stacflow check`` run on this one.

    python bench/ingest_same_end.py --n 20000 --baseline DIR [--workdir /dev/shm]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness import REPO  # first: puts the repository on sys.path

from chalicelib.stac import catalog, search
from chalicelib.stac.index import SearchIndex
from chalicelib.store.local import LocalStore
from ingest_bench import write_items

QUERIES: list[dict[str, Any]] = [
    {}, {"collections": ["dataset"]}, {"bbox": [0, 0, 40, 40]},
    {"datetime": "2020-01-01T00:00:00Z/2021-01-01T00:00:00Z"}, {"ids": ["item-0000007", "more-0000011"]},
    {"q": ["harbour"]}, {"sortby": [{"field": "properties.gsd", "direction": "desc"}]},
    {"filter": {"op": "<", "args": [{"property": "eo:cloud_cover"}, 10]}, "filter-lang": "cql2-json"},
    {"collections": ["ai-model"], "bbox": [-100, -50, 0, 50], "datetime": "2019-01-01T00:00:00Z/.."},
]
# Revisions are times: they differ between any two loads.
REVISIONS = {catalog.REV_FIELD, catalog.SHRUNK_FIELD, catalog.FROM_FIELD, catalog.SHARDS_FIELD}


def _documents(root: Path) -> dict[str, Any]:
    out = {}
    for path in root.rglob("*.json"):
        rel = path.relative_to(root).as_posix()
        if "/items/" not in rel and not rel.startswith(("stac-index/", ".stacflow/")):
            out[rel] = {k: v for k, v in json.loads(path.read_bytes()).items() if k not in REVISIONS}
    return out


def _answers(root: Path, query: dict[str, Any]) -> list[Any]:
    page = search.execute(SearchIndex(LocalStore(root)).snapshot(), search.parse_post({"limit": 100, **query}),
                          known_collections=catalog.config().collection_ids)
    return [(item["collection"], item["id"], item.get("bbox"), item["properties"]) for item in page.items]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingest-same-", dir=args.workdir) as tmp:
        work = Path(tmp)
        write_items(work / "a.ndjson", args.n, "item-")
        write_items(work / "b.ndjson", args.n, "more-")
        for label, code in (("this", REPO), ("baseline", args.baseline.resolve())):
            for source in ("a", "b"):
                subprocess.run([sys.executable, "-m", "chalicelib.cli", "publish", "--store", (work / label).as_uri(), "-q",
                                str(work / f"{source}.ndjson")], cwd=code, env=dict(os.environ, PYTHONPATH=str(code)),
                               check=True, stdout=subprocess.DEVNULL)
        this, base = work / "this", work / "baseline"
        items = sorted(p.relative_to(this) for p in this.rglob("items/*.json"))
        assert items == sorted(p.relative_to(base) for p in base.rglob("items/*.json")), "different item keys"
        print(json.dumps({"item files": len(items),
                          "differing bytes": sum((this / p).read_bytes() != (base / p).read_bytes() for p in items)}))
        ours, theirs = _documents(this), _documents(base)
        print(json.dumps({"catalog documents": len(ours),
                          "differing but for revisions": sum(ours.get(k) != theirs.get(k) for k in ours.keys() | theirs.keys())}))
        print(json.dumps({"queries": len(QUERIES), "equal answers": sum(_answers(this, q) == _answers(base, q) for q in QUERIES)}))
        check = subprocess.run([sys.executable, "-m", "chalicelib.cli", "check", "--store", this.as_uri()], cwd=REPO,
                               env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True)
        print(json.dumps({"stacflow check exit": check.returncode, "report": json.loads(check.stdout)}))


if __name__ == "__main__":
    main()
