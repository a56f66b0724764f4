"""What access control costs a STAC search: p50 with auth on (permissions cached) against auth off.

    python bench/stac_auth_bench.py --n 10000

N synthetic items owned by GitLab projects (70 % public over 20 projects, 15 % internal over 5,
10 % private over 10, 5 % of no project) published into a local store. Two levels, each p50/p95 of
the stac_bench query mix:

- domain: ``StacApi.search_post`` with ``ReadScope.everything`` (auth off) against a scope that reads
  every item through its memberships (same results: the pure cost of the filter, mask cached as
  for a caller's repeated requests), a member of two private projects (fewer results), and a fresh
  scope per request (the mask computed every time: a caller seen for the first time);
- routes: ``POST /stac/search`` through the Chalice app (chalice's test client, no sockets) with
  ``STACFLOW_AUTH=off`` against ``gitlab`` with a loopback fake GitLab, the caller's token already
  cached (a warm request makes no GitLab call: checked by counting its requests). The caller is a
  member of two private projects, so auth on returns fewer items than auth off on broad queries.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
from pathlib import Path
from typing import Any, Callable

from harness import elapsed_ms, percentiles  # first: puts REPO on sys.path

from stac_bench import SEARCHES, synthetic

from chalicelib import services
from chalicelib.auth.access import EVERYTHING, ReadScope
from chalicelib.services import keep_large_buffers
from chalicelib.settings import Settings
from chalicelib.stac.api import StacApi
from chalicelib.stac.publish import publish_paths
from chalicelib.store.local import LocalStore

BASE = "http://localhost/stac"
KINDS = [("public", 20, 70), ("internal", 5, 15), ("private", 10, 10), (None, 1, 5)]


def owned_items(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    items = synthetic(n)
    weights = [w for *_, w in KINDS]
    for item in items:
        visibility, projects, _ = rnd.choices(KINDS, weights)[0]
        if visibility is None:
            continue
        k = rnd.randrange(projects)
        item["properties"].update({"stacflow:project": f"bench/{visibility}-{k}",
                                   "stacflow:project_id": 1000 * len(visibility) + k,
                                   "stacflow:visibility": visibility})
    return items


def p50s(fn: Callable[[dict[str, Any]], Any], repeat: int) -> dict[str, float]:
    return interleaved({"": fn}, repeat)[""]


def interleaved(variants: dict[str, Callable[[dict[str, Any]], Any]], repeat: int) -> dict[str, dict[str, float]]:
    """p50 per variant and query, the variants' samples taken in turn (the shared machine's drift
    hits them alike)."""
    out: dict[str, dict[str, float]] = {name: {} for name in variants}
    for label, body in SEARCHES.items():
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for fn in variants.values():
            fn(body)  # lazy columns, masks
        for _ in range(repeat):
            for name, fn in variants.items():
                samples[name].append(elapsed_ms(lambda: fn(body)))
        for name in variants:
            out[name][label] = round(percentiles(samples[name])[0], 2)
    return out


def domain(store: LocalStore, repeat: int) -> dict[str, dict[str, float]]:
    keep_large_buffers()
    api = StacApi(store)
    member = ReadScope(public=True, internal=True, projects=frozenset({"bench/private-1", "bench/private-2"}))
    every_project = ReadScope(public=True, internal=True, projects=frozenset(
        f"bench/{visibility}-{k}" for visibility, projects, _ in KINDS if visibility for k in range(projects)))
    counter = iter(range(10**9))
    return interleaved({
        "auth off (everything)": lambda body: api.search_post(BASE, body, EVERYTHING),
        "member of all (same results, cached mask)": lambda body: api.search_post(BASE, body, every_project),
        "member of 2 private (cached mask)": lambda body: api.search_post(BASE, body, member),
        "fresh scope per request": lambda body: api.search_post(BASE, body, ReadScope(
            public=True, internal=True, projects=frozenset({f"bench/private-{next(counter) % 10}",
                                                            f"x-{next(counter)}"}))),
    }, repeat)


def routes(store: LocalStore, repeat: int) -> dict[str, dict[str, float]]:
    from chalice.test import Client

    from app import app
    from chalicelib.auth.gitlab import GitLabApi
    from chalicelib.auth.service import AccessService
    from tests.helpers.fake_gitlab import FakeGitLab

    with FakeGitLab() as gl:
        token = gl.add_user("bench-user")
        for name in ("private-1", "private-2"):
            gl.add_member(gl.add_access_project(f"bench/{name}", "private").id, "bench-user", 20)
        roots = {}
        for mode in ("off", "gitlab"):
            cfg = Settings(store_uri=store.uri, public_url=None, dispatch_events=False, auth=mode,
                           gitlab_url=gl.url if mode == "gitlab" else None, gitlab_token=gl.token)
            access = AccessService(GitLabApi(gl.url, 2.0), service_token=gl.token, cache_ttl=3600) \
                if mode == "gitlab" else None
            roots[mode] = services.Services(store=store, settings=cfg, **({"access": access} if access else {}))
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        with Client(app) as client:
            def search_with(mode: str) -> Callable[[dict[str, Any]], None]:
                def search(body: dict[str, Any]) -> None:
                    services._root = roots[mode]  # the two configurations take turns (bench only)
                    answer = client.http.post("/stac/search", headers=headers, body=json.dumps(body))
                    assert answer.status_code == 200, answer.body
                return search
            search_with("gitlab")({})  # authenticate once: the token's user and memberships are cached
            before = len(gl.paths_requested())
            out = interleaved({"auth off": search_with("off"), "auth on (cached)": search_with("gitlab")}, repeat)
            assert len(gl.paths_requested()) == before, "a warm request asked GitLab"
    services.configure()
    return out


def table(title: str, results: dict[str, dict[str, float]]) -> str:
    names = list(results)
    base = results[names[0]]
    lines = [f"{title}: p50 ms (ratio to {names[0]})", "| query | " + " | ".join(names) + " |",
             "|---" * (len(names) + 1) + "|"]
    for label in SEARCHES:
        cells = [f"{results[n][label]:.2f}" + ("" if n == names[0] else f" ({results[n][label] / base[label]:.2f}x)")
                 for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    medians = [f"{statistics.median(results[n][q] / base[q] for q in SEARCHES):.2f}x" for n in names[1:]]
    lines.append("| median ratio | - | " + " | ".join(medians) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStore(Path(tmp) / "store", fsync=False)
        source = Path(tmp) / "items.ndjson"
        source.write_text("\n".join(json.dumps(i) for i in owned_items(args.n)))
        publish_paths(store, [source], progress=False)
        print(f"N = {args.n}")
        print(table("domain (StacApi.search_post)", domain(store, args.repeat)))
        print(table("routes (POST /stac/search, chalice test client)", routes(store, args.repeat)))


if __name__ == "__main__":
    main()
