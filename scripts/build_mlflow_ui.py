"""Copy MLflow's built web UI out of the ``mlflow`` wheel into ``build/ui/mlflow/``.

The wheel ships the UI it was released with (``mlflow/server/js/build``: ``index.html`` plus the
hashed ``static/`` bundle). The service serves that copy at ``/mlflow/`` (as
``mlflow server --static-prefix /mlflow`` would) and never imports mlflow: this script only reads
the installed distribution's files (or, where the test clients are not installed, as under
``make serve``, the pinned wheel downloaded with pip, without its dependencies), and refuses any
other release than the one the client tests pin, since the service answers exactly that release's
UI calls.

    python scripts/build_mlflow_ui.py [--dest build/ui/mlflow]
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

MLFLOW_VERSION = "3.17.2"  # = requirements-dev.txt's mlflow pin and mlflow_routes.MLFLOW_VERSION
REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DEST = REPO / "build" / "ui" / "mlflow"


def bundle_source() -> pathlib.Path:
    """``mlflow/server/js/build`` inside the installed distribution (found without importing mlflow)."""
    try:
        dist = importlib.metadata.distribution("mlflow")
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit(f"mlflow is not installed: pip install mlflow=={MLFLOW_VERSION}") from None
    if dist.version != MLFLOW_VERSION:
        raise SystemExit(f"mlflow {dist.version} is installed; the service answers the UI of {MLFLOW_VERSION}")
    source = pathlib.Path(str(dist.locate_file("mlflow/server/js/build")))
    if not (source / "index.html").is_file():
        raise SystemExit(f"{source} holds no built UI (a source install of mlflow?)")
    return source


def _installed() -> pathlib.Path | None:
    try:
        return bundle_source()
    except SystemExit:
        return None


def _extract_from_wheel(staging: pathlib.Path) -> None:
    """The bundle out of the pinned wheel, fetched by pip (no dependencies, nothing installed)."""
    prefix = "mlflow/server/js/build/"
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "-d", folder, f"mlflow=={MLFLOW_VERSION}"], check=True)
        wheel = next(pathlib.Path(folder).glob(f"mlflow-{MLFLOW_VERSION}-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                rel = name[len(prefix):] if name.startswith(prefix) else ""
                if rel and not name.endswith("/") and ".." not in rel.split("/"):
                    target = staging / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(z.read(name))
    if not (staging / "index.html").is_file():
        raise SystemExit(f"the mlflow {MLFLOW_VERSION} wheel holds no built UI")


def build(dest: pathlib.Path = DEFAULT_DEST) -> pathlib.Path:
    """Replace ``dest`` with a fresh copy of the bundle; a crash leaves the old copy or none, never half."""
    source = _installed()
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".mlflow-ui-", dir=dest.parent))
    try:
        if source is not None:
            shutil.copytree(source, staging, dirs_exist_ok=True)
        else:
            _extract_from_wheel(staging)
        (staging / "MLFLOW_VERSION").write_text(MLFLOW_VERSION + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=pathlib.Path, default=DEFAULT_DEST)
    args = parser.parse_args(argv)
    dest = build(args.dest)
    files = [p for p in dest.rglob("*") if p.is_file()]
    print(f"MLflow {MLFLOW_VERSION} UI: {len(files)} files, "
          f"{sum(p.stat().st_size for p in files) / 1e6:.1f} MB in {dest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
