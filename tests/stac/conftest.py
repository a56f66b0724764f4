"""Fixtures of the STAC tests: a searchable corpus over each store backend, a live API, offline pystac."""
from __future__ import annotations

from typing import Iterator

import pytest

from chalicelib.store import ObjectStore
from tests.helpers import live_api
from tests.helpers.corpus import Corpus, build_corpus
from tests.helpers.stac_items import offline_validation


@pytest.fixture(scope="module", params=["local", "s3"])
def corpus(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """Read-only corpus shared by a module's tests, one per store backend."""
    if request.param == "local":
        from chalicelib.store.local import LocalStore
        return build_corpus(LocalStore(tmp_path_factory.mktemp("corpus"), fsync=False))
    from chalicelib.store.s3 import S3Store
    from tests.helpers.servers import new_bucket
    return build_corpus(S3Store(new_bucket(request.getfixturevalue("moto_endpoint")), "pre/fix"))


@pytest.fixture
def fresh_corpus(store: ObjectStore) -> Corpus:
    """A corpus a test may change."""
    return build_corpus(store)


@pytest.fixture
def offline_pystac() -> Iterator[None]:
    """pystac's validate()/validate_all() against the offline schema mirror (no network)."""
    with offline_validation():
        yield


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[live_api.Api]:
    """A module's ``stacflow serve`` over a store holding a known set of published items."""
    with live_api.serve(tmp_path_factory.mktemp("api")) as served:
        yield served
