"""The official validators against a live server and the static tree (offline wrappers from shared/tools)."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.helpers.paths import REPO, TOOLS

from tests.helpers.live_api import Api

SAV_PYTHON = REPO / ".venv-sav" / "bin" / "python"


@pytest.mark.slow
def test_stac_api_validator_finds_no_errors(api: Api) -> None:
    assert SAV_PYTHON.exists(), "stac-api-validator venv missing: run `make .venv-sav/.installed`"
    near = {"type": "Polygon", "coordinates": [[[20, 20], [21, 20], [21, 21], [20, 21], [20, 20]]]}
    args = [str(SAV_PYTHON), str(TOOLS / "stac-api-validator-offline"), "--root-url", api.url,
            "--collection", "ai-model", "--geometry", json.dumps(near),
            "--fields-nested-property", "properties.platform"]
    for cls in ("core", "collections", "features", "item-search", "filter", "item-search#sort",
                "item-search#fields"):
        args += ["--conformance", cls]
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    report = out.stdout + out.stderr
    assert out.returncode == 0, report[-6000:]  # the wrapper exits 1 on any validator error


@pytest.mark.slow
def test_validate_stac_cli_on_the_static_tree_and_search(api: Api) -> None:
    tree = subprocess.run(["bash", str(TOOLS / "validate-stac"), "-q", str(api.store.root / "catalog.json"),
                           str(api.store.root / "collections")], capture_output=True, text=True, timeout=300)
    assert tree.returncode == 0, tree.stdout[-3000:] + tree.stderr[-2000:]
    assert " 0 failed" in tree.stdout
    search = subprocess.run(["bash", str(TOOLS / "validate-stac"), "-q", api.url + "/search?limit=1000",
                             api.url + "/collections"], capture_output=True, text=True, timeout=300)
    assert search.returncode == 0, search.stdout[-3000:] + search.stderr[-2000:]
