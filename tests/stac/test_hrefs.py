"""Relative hrefs of stored items, resolved per request by the STAC API."""
from __future__ import annotations

import json

import pytest

from chalicelib.stac.hrefs import resolve, resolve_bytes

STAC = "https://api.example/stage/stac"


@pytest.mark.parametrize("href, expected", [
    ("./m-v2.json", f"{STAC}/collections/ai-model/items/m-v2"),
    ("../../dataset/items/s2.json", f"{STAC}/collections/dataset/items/s2"),
    ("../collection.json", f"{STAC}/collections/ai-model"),
    ("../../../catalog.json", STAC),
    ("../../../mlflow-artifacts/1/r/artifacts/model/model%20a.onnx",
     "https://api.example/stage/mlflow/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/model/model%20a.onnx"),
    ("./m-v2.json#frag", f"{STAC}/collections/ai-model/items/m-v2#frag"),
    ("../shards/0a.json", "../shards/0a.json"),  # no API route: served as stored
    ("../../../../outside.json", "../../../../outside.json"),
    ("https://elsewhere.example/x.tif", "https://elsewhere.example/x.tif"),
    ("s3://bucket/x.tif", "s3://bucket/x.tif"),
])
def test_resolve(href: str, expected: str) -> None:
    assert resolve(href, "ai-model", STAC) == expected


def test_resolve_bytes_touches_only_href_values() -> None:
    item = {"id": "m-v1", "properties": {"note": '"href":"./m-v2.json"'},
            "assets": {"a": {"href": "../../../mlflow-artifacts/x/y.onnx"}, "b": {"href": "s3://b/k"}},
            "links": [{"rel": "successor-version", "href": "./m-v2.json"}]}
    raw = json.dumps(item, separators=(",", ":")).encode()
    out = json.loads(resolve_bytes(raw, "ai-model", STAC))
    assert out["properties"] == item["properties"]  # a string that looks like an href stays as it is
    assert out["assets"]["a"]["href"] == "https://api.example/stage/mlflow/api/2.0/mlflow-artifacts/artifacts/x/y.onnx"
    assert out["assets"]["b"]["href"] == "s3://b/k"
    assert out["links"][0]["href"] == f"{STAC}/collections/ai-model/items/m-v2"
