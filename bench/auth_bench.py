"""What access control costs on the warm path: p50/p95 of a ``log_batch`` and of a STAC search over
HTTP against ``stacflow serve``, with access control off and with GitLab auth on (permissions cached,
a loopback fake GitLab), and the number of GitLab calls the measured requests made.

    .venv/bin/python bench/auth_bench.py [--n 300] [--items 500]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from harness import elapsed_ms, free_port, percentiles, serving

from chalicelib.stac.publish import publish_paths
from chalicelib.store.local import LocalStore
from tests.helpers.access_world import build_world
from tests.helpers.fake_gitlab import FakeGitLab
from tests.helpers.stac_items import random_items


def _post(url: str, body: dict[str, Any], token: str | None) -> Any:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


@contextmanager
def _server(mode: str, gl: FakeGitLab, project: str, token: str, items: int) -> Iterator[dict[str, Callable[[], None]]]:
    """``stacflow serve`` with ``STACFLOW_AUTH=mode`` over a store of ``items`` items and one run:
    yields the two timed calls."""
    root = Path(tempfile.mkdtemp(prefix=f"auth-bench-{mode}-"))
    store = LocalStore(root / "store", fsync=False)
    source = root / "items.ndjson"
    source.write_text("\n".join(json.dumps(i) for i in random_items(items)))
    publish_paths(store, [source], progress=False)
    os.environ.update({"STACFLOW_AUTH": mode, "STACFLOW_GITLAB_URL": gl.url, "STACFLOW_GITLAB_TOKEN": gl.token,
                       "STACFLOW_SIGNING_KEY": "bench-signing-key-0123456789"})
    port = free_port()
    with serving([sys.executable, "-m", "chalicelib.cli", "serve", "--port", str(port), "--store", store.uri],
                 port, "/health") as served:
        api = served.url + "/mlflow/api/2.0/mlflow"
        eid = _post(f"{api}/experiments/create", {"name": "bench", "tags": [
            {"key": "stacflow.project", "value": project}]}, token)["experiment_id"]
        run_id = _post(f"{api}/runs/create", {"experiment_id": eid}, token)["run"]["info"]["run_id"]
        step = [0]

        def log_batch() -> None:
            step[0] += 1
            _post(f"{api}/runs/log-batch", {"run_id": run_id, "metrics": [
                {"key": f"m{i}", "value": float(i), "timestamp": step[0], "step": step[0]} for i in range(10)]}, token)

        def search() -> None:
            _post(served.url + "/stac/search", {"limit": 10, "bbox": [-180, -90, 180, 90]}, token)

        yield {"log_batch": log_batch, "search": search}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--items", type=int, default=500)
    args = parser.parse_args()
    with FakeGitLab() as gl:
        world = build_world(gl)
        token = world.tokens["developer"] or ""
        with ExitStack() as stack:
            calls = {mode: stack.enter_context(_server(mode, gl, world.project_id("private"), token, args.items))
                     for mode in ("off", "gitlab")}
            for _ in range(20):  # warm: caches filled, index loaded
                for mode in calls:
                    for call in calls[mode].values():
                        call()
            before = len(gl.requests)
            samples: dict[tuple[str, str], list[float]] = {(m, w): [] for m in calls for w in ("log_batch", "search")}
            # Interleaved, so the shared machine's load falls on both modes alike.
            for _ in range(args.n):
                for what in ("log_batch", "search"):
                    for mode in calls:
                        samples[(mode, what)].append(elapsed_ms(calls[mode][what]))
            gitlab_calls = len(gl.requests) - before
    for what in ("log_batch", "search"):
        off, on = percentiles(samples[("off", what)]), percentiles(samples[("gitlab", what)])
        print(f"{what:10s} p50 off {off[0]:7.2f} ms  on {on[0]:7.2f} ms  ratio {on[0] / off[0]:.2f}   "
              f"p95 off {off[1]:7.2f} ms  on {on[1]:7.2f} ms")
    print(f"GitLab calls during {2 * args.n} measured authenticated requests: {gitlab_calls}")


if __name__ == "__main__":
    main()
