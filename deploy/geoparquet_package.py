"""The geoparquet function's own zip (``functions/geoparquet.py``): ``requirements-geoparquet.txt`` for the
Lambda platform and its runtime, the few runtime pins the index reader needs, ``chalicelib/`` and the entry.

Not Chalice's package: pyarrow, pandas and geopandas never reach the API's zip or cold start. pyarrow 25's
wheels need glibc 2.28, so this function runs on python3.12 (Amazon Linux 2023); the API stays on 3.11.
What it never imports is dropped to stay under Lambda's 250 MB unzipped: pyogrio and its GDAL (geopandas'
file IO, imported only by ``read_file``/``to_file``), Arrow Flight, headers and Cython sources, test suites.

Usage: python -m deploy.geoparquet_package OUT.zip [COPY.zip ...]
"""
from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON_VERSION = "3.12"  # deploy/stack.py GEOPARQUET_RUNTIME
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_24_x86_64", "manylinux_2_27_x86_64",
             "manylinux_2_28_x86_64", "manylinux1_x86_64", "manylinux2010_x86_64")
# From requirements.txt, what chalicelib's store, index and logging import on this function's path.
RUNTIME_PINS = ("tenacity", "aws-lambda-powertools", "zstandard")
# The zip comes first on sys.path: what it ships must suit the runtime's boto3/botocore too (dateutil < 3).
SHARED_PINS = ("python-dateutil==2.9.0.post0",)
# (pyarrow.lib links libarrow_substrait: it stays; only Flight's libraries are separate modules.)
DROP = ("pyogrio", "pyogrio.libs", "pyogrio-*", "pyarrow/include", "pyarrow/src", "pyarrow/tests",
        "pyarrow/libarrow_flight.so*", "pyarrow/libarrow_python_flight.so*", "pyarrow/_flight*.so",
        "pyarrow/*.pyx", "pyarrow/*.pxd", "pyarrow/*.pxi", "*/tests", "*/__pycache__", "bin", "types_psutil*",
        "psutil-stubs", "zstandard/_cffi.*.so")
LIMIT_UNZIPPED = 250_000_000


def _pins() -> list[str]:
    pins = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    return [p for p in pins if p.split("==")[0] in RUNTIME_PINS]


def _strip_debug(site: Path) -> None:
    """Drop debug sections from native libraries (zstandard's C backend: 11.5 MB, 1 MB without them):
    binutils' ``strip --strip-debug`` keeps every symbol the loader needs. Without ``strip`` the zip is
    built as it is and the size check below decides."""
    strip = shutil.which("strip")
    if strip is None:
        print("strip not found (binutils): native libraries keep their debug sections", file=sys.stderr)
        return
    libraries = [str(p) for p in site.rglob("*.so*") if p.is_file() and not p.is_symlink()]
    for lo in range(0, len(libraries), 200):
        subprocess.run([strip, "--strip-debug", *libraries[lo:lo + 200]], check=True)


def build(out: Path) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-warn-conflicts", "--target", str(site), "--only-binary=:all:",
                        "--python-version", PYTHON_VERSION, "--implementation", "cp", *platforms,
                        "-r", str(REPO / "requirements-geoparquet.txt"), *_pins(), *SHARED_PINS], check=True)
        for path in sorted(site.rglob("*"), key=lambda p: len(p.parts)):
            rel = path.relative_to(site).as_posix()
            if path.exists() and any(fnmatch.fnmatch(rel, pattern) for pattern in DROP):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        _strip_debug(site)
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for root, name in ((site, None), (REPO, "chalicelib")):
                base = root if name is None else root / name
                for path in sorted(base.rglob("*")):
                    if path.is_file() and "__pycache__" not in path.parts:
                        zf.write(path, path.relative_to(root).as_posix())
            for name in ("functions/__init__.py", "functions/geoparquet.py"):
                zf.write(REPO / name, name)
        unzipped = sum(info.file_size for info in zipfile.ZipFile(out).infolist())
    return os.path.getsize(out), unzipped


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    out = Path(argv[0])
    zipped, unzipped = build(out)
    for copy in argv[1:]:
        shutil.copyfile(out, copy)
    print(f"{out.name}: {zipped / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped (limit 250; upload "
          f"through S3, as both deploy paths do)")
    if unzipped > LIMIT_UNZIPPED:
        print(f"{out.name} is over Lambda's unzipped limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
