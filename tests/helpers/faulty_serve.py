"""``stacflow serve`` over a fault-injecting store: ``python -m tests.helpers.faulty_serve serve ...``.

The plan comes from ``STACFLOW_TEST_FAULTS`` (see ``faults.plan_from_env``). Every injected fault is
logged on stderr as ``FAULT <kind>`` so a load run can count them from the workers' logs.
"""
from __future__ import annotations

import os
import sys
from typing import Any

from chalicelib import services
from chalicelib.cli import main

from .faults import FaultPlan, inject, plan_from_env


def _wrap(plan: FaultPlan) -> None:
    opened = services.open_store

    def open_store(uri: str, **kwargs: Any) -> Any:
        store = opened(uri, **kwargs)
        return inject(store, plan)

    services.open_store = open_store  # type: ignore[assignment]


if __name__ == "__main__":
    plan = plan_from_env(os.environ)
    if plan is not None:
        plan.spare_main_thread = True  # the requests run on the server's threads
        plan.report = lambda kind, call: print(f"FAULT {kind} {call.verb}", file=sys.stderr, flush=True)
        _wrap(plan)
    sys.exit(main(sys.argv[1:]))
