"""schemathesis against the service's own OpenAPI descriptions, over real HTTP (``stacflow serve``):
the STAC API's (``/stac/api``) and the MLflow routes' (``/mlflow/api/openapi.json``, written from
MLflow's REST docs). No input may get a 500, and no response may violate its schema.

Bounded: ``STACFLOW_SCHEMATHESIS_EXAMPLES`` examples per operation (default 3); the slow run takes
100 per operation. Run with ``-s`` to see how many inputs were sent.
"""
from __future__ import annotations

import os
from typing import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.helpers.servers import LiveServer
from tests.helpers.stac_items import make_item

QUICK = int(os.environ.get("STACFLOW_SCHEMATHESIS_EXAMPLES", "3"))
SLOW = 100
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
TRIED: dict[str, int] = {}  # inputs sent per description (reported by the slow run)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    from chalicelib.stac.publish import publish_paths
    from chalicelib.store.local import LocalStore
    root = tmp_path_factory.mktemp("schemathesis")
    items = root / "items.ndjson"
    import json
    items.write_text("\n".join(json.dumps(make_item(f"it-{i}", lon=i, lat=i)) for i in range(5)))
    publish_paths(LocalStore(root / "store"), [items], progress=False)
    live = LiveServer(f"file://{root / 'store'}")
    yield live
    live.stop()


@pytest.fixture(scope="module", autouse=True)
def tried() -> Iterator[None]:
    yield
    print(f"\nschemathesis inputs sent: {TRIED}")


@pytest.fixture(scope="module")
def stac_schema(server: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(server.url + "/stac/api")


@pytest.fixture(scope="module")
def mlflow_schema(server: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(server.url + "/mlflow/api/openapi.json")


stac = schemathesis.pytest.from_fixture("stac_schema")
mlflow = schemathesis.pytest.from_fixture("mlflow_schema")
_SETTINGS = dict(deadline=None, derandomize=True, database=None,
                 suppress_health_check=list(HealthCheck))


def _call(case: schemathesis.Case, which: str) -> None:
    TRIED[which] = TRIED.get(which, 0) + 1
    case.call_and_validate(checks=CHECKS, timeout=30)


@stac.parametrize()
@settings(max_examples=QUICK, **_SETTINGS)  # type: ignore[arg-type]
def test_stac_api_answers_every_input_within_its_schema(case: schemathesis.Case) -> None:
    _call(case, "stac")


@mlflow.parametrize()
@settings(max_examples=QUICK, **_SETTINGS)  # type: ignore[arg-type]
def test_mlflow_api_answers_every_input_within_its_schema(case: schemathesis.Case) -> None:
    _call(case, "mlflow")


@pytest.mark.slow
@stac.parametrize()
@settings(max_examples=SLOW, **_SETTINGS)  # type: ignore[arg-type]
def test_stac_api_at_length(case: schemathesis.Case) -> None:
    _call(case, "stac")


@pytest.mark.slow
@mlflow.parametrize()
@settings(max_examples=SLOW, **_SETTINGS)  # type: ignore[arg-type]
def test_mlflow_api_at_length(case: schemathesis.Case) -> None:
    _call(case, "mlflow")
