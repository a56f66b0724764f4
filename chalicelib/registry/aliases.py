"""MLflow's model alias calls: ``aliases/<uid>.json`` maps each alias to a version (compare-and-swap).

A version's STAC item lists its aliases, so moving an alias republishes both versions it concerns.
"""
from __future__ import annotations

from typing import Any

from ..mlflowapi import validation as v
from ..mlflowapi.errors import alias_not_found, version_not_found
from . import records as rec
from .core import RegistryCore
from .records import ModelVersion


class ModelAliases:
    def __init__(self, core: RegistryCore) -> None:
        self.core = core
        self.store = core.store

    def set_registered_model_alias(self, name: str | None, alias: str | None, version: Any) -> None:
        alias = v.new_model_alias(alias)
        name, number = v.model_name(name), v.model_version(version)
        rm = self.core.resolve(name)
        self.core.live_version(rm, number)
        previous: list[int] = []

        def point(doc: dict[str, Any]) -> dict[str, Any] | None:
            previous[:] = [int(doc[alias])] if alias in doc else []
            return None if previous == [number] else {**doc, alias: number}

        self.core.cas(rec.aliases_key(rm.uid), point, default=dict)
        if previous == [number]:
            return
        current = rec.load_version(self.store, rm.uid, rm.name, number)
        if current is None or current.deleted:  # deleted meanwhile (its delete cleared aliases before ours landed)
            self.core.unalias(rm.uid, lambda a, n: a == alias and n == number)
            raise version_not_found(name, number)
        for touched in set(previous + [number]):
            self.core.touch(rm, touched)  # their items list the alias: republish both

    def delete_registered_model_alias(self, name: str | None, alias: str | None) -> None:
        name = v.model_name(name)
        alias = v.model_alias(alias)
        rm = self.core.resolve(name)
        for version in self.core.unalias(rm.uid, lambda a, n: a == alias):
            self.core.touch(rm, version)

    def get_model_version_by_alias(self, name: str | None, alias: str | None) -> ModelVersion:
        rm = self.core.resolve(name)
        if isinstance(alias, str) and alias.lower() == "latest":
            entry = self.core.index.entry(rm.uid)
            if entry is None or not entry.versions:
                raise alias_not_found(alias)
            return self.core.get_version(rm.name, max(entry.versions))
        alias = v.model_alias(alias)
        version = rec.load_aliases(self.store, rm.uid).get(alias)
        if version is None:
            raise alias_not_found(alias)
        return self.core.get_version(rm.name, version)
