"""Drop the test suites (and spare native backends) that third-party wheels ship from a Lambda deployment zip.

``onnx`` alone carries 12 MB (zipped) of backend test models and numpy its own tests: nothing on a
request or event path imports them, and with them the zip passes Lambda's 50 MB upload limit.
Only paths under installed packages are dropped; the project's own ``chalicelib/`` is never touched.

    python -m deploy.prune ZIP [ZIP...]
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import zipfile

# A ``test``/``tests`` package directory inside a third-party package (not chalicelib, not app.py).
_TEST_DIR = re.compile(r"^(?!chalicelib/)[^/]+/(?:[^/]+/)*tests?/")
# zstandard ships a C extension and a 12 MB cffi twin; CPython imports the C one (its default policy).
_SPARE_BACKENDS = re.compile(r"^zstandard/_cffi\.[^/]*\.so$")


def prunable(name: str) -> bool:
    return bool(_TEST_DIR.match(name) or _SPARE_BACKENDS.match(name))


def prune(path: str) -> tuple[int, int]:
    """Rewrite the zip at ``path`` without prunable entries; (entries dropped, zipped bytes saved)."""
    dropped = saved = 0
    folder = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".zip", delete=False) as tmp:
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                if prunable(info.filename):
                    dropped, saved = dropped + 1, saved + info.compress_size
                    continue
                dst.writestr(info, src.read(info), compress_type=info.compress_type)
    os.replace(tmp.name, path)
    return dropped, saved


def main(paths: list[str]) -> None:
    for path in paths:
        dropped, saved = prune(path)
        print(f"{path}: dropped {dropped} test files of third-party packages ({saved / 1e6:.1f} MB zipped)")


if __name__ == "__main__":
    main(sys.argv[1:])
