"""MLflow's clock: timestamps are integer milliseconds since the epoch (mlflow/utils/time.py)."""
from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
