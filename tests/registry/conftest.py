"""Fixtures of the registry tests: a store whose changes are delivered to the event functions on demand."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest

from chalicelib import services
from chalicelib.store import ObjectStore
from tests.helpers.registry_world import World, make_world


@pytest.fixture(scope="module")
def onnx_bytes() -> bytes:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    return to_onnx(LogisticRegression(max_iter=300).fit(X, y), X[:1], options={"zipmap": False}).SerializeToString()


@pytest.fixture
def world(store: ObjectStore) -> Iterator[World]:
    yield make_world(store)
    services.configure()
