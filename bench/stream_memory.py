"""Peak memory of big-object reads: ``/files`` under ``stacflow serve`` and model-file hashing.

    .venv/bin/python bench/stream_memory.py --mb 300

Writes a sparse object of ``--mb`` MB into a fresh local store, starts ``stacflow serve`` on it and
reports the server's peak RSS (VmHWM) growth for a 1-byte ranged GET and for a full GET of the
object through its signed ``/files`` URL, then the peak RSS growth of hashing it as the registry
publication does (in a fresh process). Linux only (reads /proc).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parent.parent
KEY = "mlflow-artifacts/0/r/artifacts/model.onnx"


def _hwm_mb(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, headers: dict[str, str]) -> int:
    req = urllib.request.Request(url, headers={"Accept": "*/*", **headers})
    total = 0
    with urllib.request.urlopen(req) as resp:
        while chunk := resp.read(1 << 20):
            total += len(chunk)
    return total


HASH_SCRIPT = """
import resource, sys
from chalicelib.store.local import LocalStore
from chalicelib.registry.publication import Context, _file_facts
store = LocalStore(sys.argv[1])
info = store.head(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
_file_facts(Context(store=store, tracking=None), info)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=300)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp) / "store"
        path = root / KEY
        path.parent.mkdir(parents=True)
        with open(path, "wb") as fh:
            fh.truncate(args.mb * 1024 * 1024)
        port = _port()
        server = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "serve", "--port", str(port),
                                   "--store", root.as_uri()], cwd=REPO, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    urllib.request.urlopen(base + "/health").read()
                    break
                except OSError:
                    time.sleep(0.1)
            sys.path.insert(0, str(REPO))
            from chalicelib.store.local import LocalStore
            url = LocalStore(root).presign_get(KEY, base_url=base)
            start = _hwm_mb(server.pid)
            got = _get(url, {"Range": "bytes=0-0"})
            ranged = _hwm_mb(server.pid)
            t0 = time.perf_counter()
            full = _get(url, {})
            elapsed = time.perf_counter() - t0
            after = _hwm_mb(server.pid)
            print(f"object {args.mb} MB; serve peak RSS at start {start:.0f} MB")
            print(f"1-byte ranged GET ({got} B): peak RSS +{ranged - start:.0f} MB")
            print(f"full GET ({full / 2**20:.0f} MB in {elapsed:.1f} s): peak RSS +{after - start:.0f} MB "
                  f"(peak {after:.0f} MB)")
        finally:
            server.terminate()
            server.wait()
        out = subprocess.run([sys.executable, "-c", HASH_SCRIPT, str(root), KEY], cwd=REPO, env=env,
                             check=True, capture_output=True, text=True).stdout.strip()
        print(f"registry hashing of the model file: peak RSS +{float(out):.0f} MB")


if __name__ == "__main__":
    main()
