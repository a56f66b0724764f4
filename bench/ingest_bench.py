"""Bulk ingest benchmark: ``stacflow publish`` of N generated items into an empty store and into a
store already holding N, and the store requests it makes per 1,000 items.

    python bench/ingest_bench.py --n 100000 [--baseline DIR] [--workdir DIR] [--rounds 1] [--pgstac BIN]

Per run: wall time, items/s, CPU time (user + system, the parsing worker processes included:
steadier than wall time on a shared machine; user and system apart), the peak RSS of the command's
main process (its VmHWM) and the peaks of the summed RSS and PSS of its whole process tree (the
parsing workers share their parent's pages: PSS counts each shared page once). ``--baseline DIR``: a checkout of another
commit (e.g. ``git archive <commit> | tar -x -C DIR``) run on the same files, interleaved with this
one, ``--rounds`` times. ``--workdir``: where the inputs and stores live (default: the system's
temporary folder). Then the requests of publishing 1,000 and 10,000 items through
``InstrumentedStore`` (counted by S3 verb, as S3 bills them; item PUTs go through the port's
parallel ``put_many``, as on S3), into an empty store and into one holding as many items.
``--pgstac BIN``: the peer in the same run, ``pypgstac load items`` (pypgstac 0.10, requirements-dev)
into a throwaway PostgreSQL cluster made with BIN's ``initdb`` (PostGIS installed); its CPU is the
client's plus the server's. After each load the server's deferred work (``vacuum analyze``, a
checkpoint) is run and timed apart (``deferred_work_s``), so it does not slow the next run down. The issue's reference: 100,000 items in 5.9 s (16,900 items/s).

Creating a file is most of the system time, and on an ext4 filesystem without a journal that has
seen many files deleted (other benchmarks' stores) it costs several times more (the inode allocator
skips recently deleted inodes, reading each one's inode block); a tmpfs ``--workdir``
(``/dev/shm``) measures the publisher rather than that state.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import REPO  # first: puts REPO on sys.path

from chalicelib.store.local import LocalStore
from chalicelib.stac.publish import publish_paths
from tests.helpers.stores import InstrumentedStore
from stac_bench import synthetic


def write_items(path: Path, n: int, prefix: str) -> None:
    with path.open("w") as fh:
        for item in synthetic(n):
            item["id"] = item["id"].replace("item-", prefix)
            fh.write(json.dumps(item) + "\n")


def publish(code: Path, store: Path, source: Path) -> dict[str, Any]:
    """One ``stacflow publish`` child: wall s, CPU s, peak RSS MB (main process; summed PSS of the tree)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "publish", "--store", store.as_uri(), "-q",
                                 str(source)], cwd=code, env=dict(os.environ, PYTHONPATH=str(code)),
                                stdout=out, stderr=subprocess.DEVNULL)
        peaks = _sample_tree(proc)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        report = json.loads(out.read().decode().strip().splitlines()[-1])
    assert os.waitstatus_to_exitcode(status) == 0 and not report["rejected"], report
    return {"wall_s": round(wall, 1), "items_per_s": round(report["published"] / wall),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "user_s": round(usage.ru_utime, 1),
            "sys_s": round(usage.ru_stime, 1), "peak_rss_mb": round(peaks["main_hwm"] / 2**20),
            "peak_tree_rss_mb": round(peaks["tree_rss"] / 2**20), "peak_tree_pss_mb": round(peaks["tree_pss"] / 2**20)}


def _sample_tree(proc: subprocess.Popen[bytes], every: float = 0.05, pss_every: float = 0.5) -> dict[str, int]:
    """Peaks (bytes), sampled until ``proc`` exits (not reaped): its own RSS high-water mark (VmHWM:
    ``wait4``'s ru_maxrss would include this script's memory, inherited through fork and kept across
    exec), and the summed RSS and PSS of its process tree (the forked parsing workers share pages
    with it: PSS counts each shared page once). The PSS is read every ``pss_every`` only: reading it walks
    each process's page tables under its memory lock (~5 ms of CPU, ~15 ms of wall time per 200 MB process),
    which every ``every`` took ~15% of a core from the 2-core load it measured and stalled its processes'
    page faults (the peer's load is not sampled); VmHWM is exact however seldom it is read, RSS is cheap."""
    import psutil
    peaks, root = {"main_hwm": 0, "tree_rss": 0, "tree_pss": 0}, psutil.Process(proc.pid)
    pss_due = 0.0
    while True:
        try:
            if root.status() == psutil.STATUS_ZOMBIE:
                return peaks
            with open(f"/proc/{proc.pid}/status") as fh:
                hwm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))
            tree = [root, *root.children(recursive=True)]
            rss = pss = 0
            for p in tree:
                try:
                    rss += p.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    pass
            if time.monotonic() >= pss_due:
                pss_due = time.monotonic() + pss_every
                for p in tree:
                    try:
                        pss += p.memory_full_info().pss
                    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                        pass
            peaks = {"main_hwm": max(peaks["main_hwm"], hwm), "tree_rss": max(peaks["tree_rss"], rss),
                     "tree_pss": max(peaks["tree_pss"], pss)}
        except (psutil.NoSuchProcess, FileNotFoundError, StopIteration):
            return peaks
        time.sleep(every)


class Pgstac:
    """The peer: a throwaway PostgreSQL 15 cluster with pgstac (``pypgstac migrate``) and the catalog's
    collections; ``load`` times ``pypgstac load items`` (as its docs load NDJSON), CPU counted on both
    sides: the client's, and the server's (the postmaster, its live children and the backends it reaped)."""

    PORT = 55_439

    def __init__(self, workdir: Path, bin_dir: Path) -> None:
        self.data, self.bin = workdir / "pgdata", bin_dir
        self.env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(self.PORT), PGUSER="postgres",
                        PGDATABASE="postgres")
        self.data.mkdir(parents=True)
        as_postgres = ["su", "postgres", "-c"] if os.geteuid() == 0 else ["sh", "-c"]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: the cluster belongs to postgres
            for folder in (workdir.parent, workdir):
                folder.chmod(0o755)
            shutil.chown(self.data, "postgres")
        self.run = lambda cmd: subprocess.run([*as_postgres, cmd], check=True, stdout=subprocess.DEVNULL)
        self.run(f"{bin_dir / 'initdb'} -D {self.data} -A trust -U postgres")
        self.run(f"{bin_dir / 'pg_ctl'} -D {self.data} -w -l {self.data / 'log'} -o '-p {self.PORT} -k /tmp "
                 f"-c listen_addresses=127.0.0.1' start")
        import psycopg
        with psycopg.connect("postgresql://postgres@127.0.0.1:%d/postgres" % self.PORT, autocommit=True) as conn:
            conn.execute("create database pgstac")
        self.env["PGDATABASE"] = "pgstac"
        pypgstac = [str(Path(sys.executable).with_name("pypgstac"))]
        subprocess.run(pypgstac + ["migrate"], env=self.env, check=True, stdout=subprocess.DEVNULL)
        from chalicelib.stac import catalog
        collections = workdir / "pg-collections.ndjson"
        collections.write_text("".join(json.dumps(dict(catalog.public(catalog.empty_collection(c)), links=[])) + "\n"
                                       for c in catalog.config().categories))
        subprocess.run(pypgstac + ["load", "collections", str(collections), "--method", "upsert"], env=self.env,
                       check=True, stdout=subprocess.DEVNULL)
        self.pypgstac = pypgstac

    def _server_cpu(self) -> float:
        import psutil
        postmaster = psutil.Process(int((self.data / "postmaster.pid").read_text().split()[0]))
        total = sum(postmaster.cpu_times()[:4])  # user, system, children's user and system
        for child in postmaster.children():
            try:
                total += sum(child.cpu_times()[:2])
            except psutil.NoSuchProcess:
                pass
        return total

    def load(self, source: Path) -> dict[str, Any]:
        server = self._server_cpu()
        started = time.perf_counter()
        proc = subprocess.Popen(self.pypgstac + ["load", "items", str(source), "--method", "insert_ignore"],
                                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        assert os.waitstatus_to_exitcode(status) == 0
        client = usage.ru_utime + usage.ru_stime
        time.sleep(0.5)  # the postmaster reaps the loader's backend (and counts its CPU) after it exits
        server = self._server_cpu() - server
        # What the server defers after a load (a checkpoint, autovacuum's analyze) would otherwise run during
        # the next command timed here: done now, outside the load's figures, and reported apart.
        import psycopg
        started = time.perf_counter()
        with psycopg.connect("postgresql://postgres@127.0.0.1:%d/pgstac" % self.PORT, autocommit=True) as conn:
            conn.execute("vacuum analyze")
            conn.execute("checkpoint")
        deferred = time.perf_counter() - started
        return {"wall_s": round(wall, 1), "items_per_s": round(sum(1 for _ in source.open()) / wall),
                "cpu_s": round(client + server, 1), "client_cpu_s": round(client, 1), "server_cpu_s": round(server, 1),
                "deferred_work_s": round(deferred, 1)}

    def stop(self) -> None:
        self.run(f"{self.bin / 'pg_ctl'} -D {self.data} -m fast stop")


def requests_per_1000(workdir: Path, n: int) -> dict[str, dict[str, float]]:
    """Store requests by verb per 1,000 items of publishing ``n`` items, into an empty store and
    into one already holding ``n``."""
    out = {}
    store = InstrumentedStore(LocalStore(workdir / f"counted-{n}", fsync=False))
    for label, prefix in ((f"{n:,} into an empty store", "cnt-a-"), (f"{n:,} into a {n:,}-item store", "cnt-b-")):
        source = workdir / f"{prefix}{n}.ndjson"
        write_items(source, n, prefix)
        store.calls.clear()
        publish_paths(store, [source], progress=False)
        out[label] = {verb: round(count * 1000 / n, 1)
                      for verb, count in sorted(store.calls.items())} | {"total": round(store.total * 1000 / n, 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--baseline", type=Path, default=None, help="a checkout of the commit to compare with")
    parser.add_argument("--workdir", type=Path, default=None, help="where inputs and stores live")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved repetitions")
    parser.add_argument("--no-requests", action="store_true", help="skip the request counts")
    parser.add_argument("--pgstac", type=Path, default=None, metavar="BIN",
                        help="also load the items into pgstac, PostgreSQL's binaries in BIN (e.g. /usr/local/bin)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingest-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        first, second = work / "a.ndjson", work / "b.ndjson"
        write_items(first, args.n, "item-")
        write_items(second, args.n, "more-")
        codes = {"this": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
        # Interleaved (the machine may be shared); the second file goes into the store the first filled.
        for round_ in range(args.rounds):
            for label in codes:
                shutil.rmtree(work / label, ignore_errors=True)
            peer = Pgstac(work / f"pgstac-{round_}", args.pgstac) if args.pgstac else None
            try:
                for source, into in ((first, "empty"), (second, f"{args.n:,}")):
                    for label, code in codes.items():
                        row = publish(code, work / label, source)
                        print(json.dumps({"run": f"{label}: {args.n:,} into {into}", "round": round_ + 1} | row),
                              flush=True)
                    if peer is not None:
                        print(json.dumps({"run": f"pgstac: {args.n:,} into {into}", "round": round_ + 1}
                                         | peer.load(source)), flush=True)
            finally:
                if peer is not None:
                    peer.stop()
            print(json.dumps({"load average": os.getloadavg()}), flush=True)
        if not args.no_requests:
            for n in (1000, 10_000):
                print(json.dumps({"requests per 1,000 items": requests_per_1000(work, n)}), flush=True)


if __name__ == "__main__":
    main()
