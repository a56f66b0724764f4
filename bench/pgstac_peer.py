"""stac-fastapi-pgstac on a throwaway PostgreSQL, for side-by-side runs (a module the benches import).

Needs PostGIS next to PostgreSQL 15 (``apt-get install postgresql-15-postgis-3``; the server runs as
the ``postgres`` user, since ``initdb`` refuses root) and a separate virtualenv holding the peer, so
its pins never touch the project's:

    python -m venv /tmp/pgstac-venv
    /tmp/pgstac-venv/bin/pip install stac-fastapi-pgstac==7.2.0 "pypgstac[psycopg]==0.10.0" uvicorn

``pgstac(venv, collections, items)`` starts PostgreSQL on a free port in a temporary directory,
installs pgstac (``pypgstac migrate``), loads the given collection and item documents and serves
them with ``uvicorn stac_fastapi.pgstac.app:create_app`` (one worker); it yields the server (URL, process).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from harness import Served, free_port, serving

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def available(venv: Path) -> str | None:
    """Why the peer cannot run here, or None if it can."""
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL 15 at {PG_BIN}"
    if not list(Path("/usr/share/postgresql/15/extension").glob("postgis.control")):
        return "no PostGIS for PostgreSQL 15 (apt-get install postgresql-15-postgis-3)"
    if not (venv / "bin" / "pypgstac").exists():
        return f"no stac-fastapi-pgstac virtualenv at {venv} (see bench/pgstac_peer.py)"
    return None


def _as_postgres(cmd: list[str]) -> list[str]:
    return cmd if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *cmd]


@contextmanager
def pgstac(venv: Path, collections: list[dict[str, Any]], items: list[dict[str, Any]]) -> Iterator[Served]:
    tmp = Path(tempfile.mkdtemp(prefix="pgstac-"))
    data, port = tmp / "data", free_port()
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
    subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
                   check=True, capture_output=True)
    subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(tmp / "pg.log"), "-o",
                                 f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1", "start"]),
                   check=True, capture_output=True)
    try:
        dsn = f"postgresql://postgres:bench@127.0.0.1:{port}/postgres"
        pypgstac = str(venv / "bin" / "pypgstac")
        subprocess.run([pypgstac, "migrate", "--dsn", dsn], check=True, capture_output=True)
        for kind, docs in (("collections", collections), ("items", items)):
            path = tmp / f"{kind}.ndjson"
            path.write_text("".join(json.dumps(d) + "\n" for d in docs))
            subprocess.run([pypgstac, "load", kind, str(path), "--dsn", dsn, "--method", "insert"],
                           check=True, capture_output=True)
        api_port = free_port()
        env = dict(os.environ, PGUSER="postgres", PGPASSWORD="bench", PGHOST="127.0.0.1", PGPORT=str(port),
                   PGDATABASE="postgres")
        cmd = ["env", *[f"{k}={env[k]}" for k in ("PGUSER", "PGPASSWORD", "PGHOST", "PGPORT", "PGDATABASE")],
               str(venv / "bin" / "uvicorn"), "stac_fastapi.pgstac.app:create_app", "--factory", "--host", "127.0.0.1",
               "--port", str(api_port), "--workers", "1", "--log-level", "warning", "--no-access-log"]
        with serving(cmd, api_port, "/collections") as server:
            yield server
    finally:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                       capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
