"""Packaging drops third-party wheels' test suites from the Lambda zip, and nothing else."""
from __future__ import annotations

import zipfile
from pathlib import Path

from deploy.prune import prune

KEPT = ["app.py", "chalicelib/stac/api.py", "chalicelib/tests/fixture.py", "onnx/__init__.py",
        "numpy/testing/__init__.py", "pystac/test_utils.py"]
DROPPED = ["onnx/backend/test/data/model.pb", "numpy/_core/tests/test_api.py", "shapely/tests/x.py"]


def test_only_third_party_test_suites_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "deployment.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name in KEPT + DROPPED:
            z.writestr(name, b"x" * 100)
    dropped, _ = prune(str(path))
    assert dropped == len(DROPPED)
    assert sorted(zipfile.ZipFile(path).namelist()) == sorted(KEPT)
