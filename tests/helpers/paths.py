"""Where the repository and the offline STAC tools are (the tools' directory goes on ``sys.path``)."""
from __future__ import annotations

import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]


def _find_tools() -> pathlib.Path:
    env = os.environ.get("STAC_OFFLINE_TOOLS")
    if env:
        return pathlib.Path(env)
    for parent in pathlib.Path(__file__).resolve().parents:
        cand = parent / "shared" / "tools"
        if (cand / "stac_offline.py").is_file():
            return cand
    raise RuntimeError("shared/tools/stac_offline.py not found; set STAC_OFFLINE_TOOLS")


TOOLS = _find_tools()
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))
