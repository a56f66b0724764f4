"""The import graph of the project (chalicelib, functions, app.py): no cycles, and layers that only look down.

Read with ``ast``, so every import counts: module level, inside functions, under ``TYPE_CHECKING``;
relative imports are resolved. An import of a cycle held together by function-level imports fails
here even though the interpreter would tolerate it until someone hoists one of them.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

# Layers, bottom up. A module may import its own layer and the ones below it, never one above.
DOMAIN = ("chalicelib.store", "chalicelib.stac", "chalicelib.tracking", "chalicelib.registry",
          "chalicelib.mlflowapi", "chalicelib.datasets", "chalicelib.settings", "chalicelib.bounds",
          "chalicelib.like", "chalicelib.auth", "chalicelib.ui")
EVENTS = ("chalicelib.events",)  # the event functions: handed their services by the caller
ROOT = ("chalicelib.services",)  # the composition root: builds the store and the services
HTTP = ("chalicelib.http",)  # routes: take their services from the root
ENTRY = ("chalicelib.cli", "app", "functions")  # entry points: nothing imports them
LAYERS = [DOMAIN, EVENTS, ROOT, HTTP, ENTRY]
FRAMEWORKS = ("chalice", "boto3", "botocore", "aws_lambda_powertools", "gitlab")
# What may import a framework (prefix of importer -> frameworks)
FRAMEWORK_USERS = {"chalicelib.store.s3": ("boto3", "botocore"), "chalicelib.events": ("aws_lambda_powertools",),
                   "chalicelib.http": ("chalice",), "app": ("chalice",),
                   "chalicelib.datasets.gitlab": ("gitlab",)}


@dataclass
class Graph:
    modules: dict[str, Path]
    edges: dict[str, set[str]] = field(default_factory=dict)  # project module -> project modules it imports
    external: dict[str, set[str]] = field(default_factory=dict)  # project module -> top-level external names


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _within(name: str, prefixes: tuple[str, ...] | list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def build_graph(root: Path, sources: list[Path]) -> Graph:
    modules = {_module_name(root, p): p for p in sources}
    graph = Graph(modules, {m: set() for m in modules}, {m: set() for m in modules})

    def target(name: str) -> str | None:
        """The project module an import of ``name`` runs last (``a.b.c`` -> the longest known prefix)."""
        parts = name.split(".")
        for n in range(len(parts), 0, -1):
            if ".".join(parts[:n]) in modules:
                return ".".join(parts[:n])
        return None

    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".") if package else []
                    base = base[:len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                # ``from pkg import sub`` imports the submodule; ``from mod import name`` the module.
                names = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in modules else prefix
                         for alias in node.names]
            else:
                continue
            for name in names:
                found = target(name)
                if found is not None:
                    if found != mod:
                        graph.edges[mod].add(found)
                else:
                    graph.external[mod].add(name.split(".")[0])
    return graph


def project_graph() -> Graph:
    sources = [REPO / "app.py"] + sorted((REPO / "chalicelib").rglob("*.py")) + sorted((REPO / "functions").rglob("*.py"))
    return build_graph(REPO, [p for p in sources if p.exists()])


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph.edges):
        if v not in index:
            visit(v)
    return out


def layer_of(module: str) -> int:
    if module == "chalicelib":  # the package's own __init__: a docstring
        return 0
    for i, prefixes in enumerate(LAYERS):
        if _within(module, prefixes):
            return i
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {__file__}")


def upward_imports(graph: Graph) -> list[str]:
    return sorted(f"{mod} -> {dep}" for mod, deps in graph.edges.items() for dep in deps
                  if layer_of(dep) > layer_of(mod))


def framework_imports(graph: Graph) -> list[str]:
    out = []
    for mod, names in graph.external.items():
        allowed = {fw for prefix, fws in FRAMEWORK_USERS.items() if _within(mod, (prefix,)) for fw in fws}
        out += [f"{mod} -> {name}" for name in sorted(names) if name in FRAMEWORKS and name not in allowed]
    return sorted(out)


# -- the project ---------------------------------------------------------------------------
def test_no_import_cycles() -> None:
    assert cycles(project_graph()) == []


def test_layers_only_import_downwards() -> None:
    """Domain packages never import the composition root, HTTP or the event functions; nothing imports
    the entry points (app.py, functions/) but the root itself."""
    assert upward_imports(project_graph()) == []


def test_entry_points_are_imported_by_no_one() -> None:
    """app.py and functions/ are entry points (functions/ is not even in the Lambda package); only the
    CLI's ``serve`` loads the app."""
    importers = sorted(f"{mod} -> {dep}" for mod, deps in project_graph().edges.items() for dep in deps
                       if _within(dep, ENTRY) and (mod, dep) != ("chalicelib.cli", "app"))
    assert importers == []


def test_frameworks_stay_at_the_edges() -> None:
    """chalice only in http/ and app.py, boto3 only in the S3 adapter, Powertools only in the event code,
    python-gitlab only in the GitLab reader."""
    assert framework_imports(project_graph()) == []


def test_the_lambda_package_needs_only_app_and_chalicelib() -> None:
    """``chalice package`` ships app.py and chalicelib/: the modules the deployed app can reach must be there."""
    graph = project_graph()
    reached, todo = set(), ["app"]
    while todo:
        mod = todo.pop()
        if mod not in reached:
            reached.add(mod)
            todo += graph.edges[mod]
    outside = sorted(m for m in reached if m != "app" and not _within(m, ("chalicelib",)))
    assert outside == []
    assert not (REPO / "vendor" / "functions").exists()


def test_every_module_has_a_layer() -> None:
    for mod in project_graph().modules:
        layer_of(mod)


# -- the checker itself can fail -----------------------------------------------------------
def _fake(tmp_path: Path, files: dict[str, str]) -> Graph:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return build_graph(tmp_path, sorted(tmp_path.rglob("*.py")))


def test_a_cycle_through_function_level_and_relative_imports_is_found(tmp_path: Path) -> None:
    graph = _fake(tmp_path, {
        "chalicelib/__init__.py": "",
        "chalicelib/services.py": "def store():\n    from .tracking.service import TrackingService\n",
        "chalicelib/tracking/__init__.py": "",
        "chalicelib/tracking/service.py": "def tracking_service():\n    from .. import services\n",
        "chalicelib/stac/__init__.py": "from .api import StacApi\n",
        "chalicelib/stac/api.py": "from . import StacApi as _again\nimport boto3.session\n",
    })
    assert cycles(graph) == [["chalicelib.services", "chalicelib.tracking.service"],
                             ["chalicelib.stac", "chalicelib.stac.api"]]
    assert upward_imports(graph) == ["chalicelib.tracking.service -> chalicelib.services"]
    assert framework_imports(graph) == ["chalicelib.stac.api -> boto3"]


def test_type_checking_imports_count(tmp_path: Path) -> None:
    graph = _fake(tmp_path, {
        "chalicelib/__init__.py": "",
        "chalicelib/registry/__init__.py": "",
        "chalicelib/registry/lineage.py": ("from typing import TYPE_CHECKING\n"
                                           "if TYPE_CHECKING:\n    from chalicelib.http import urls\n"),
        "chalicelib/http/__init__.py": "",
        "chalicelib/http/urls.py": "",
    })
    assert upward_imports(graph) == ["chalicelib.registry.lineage -> chalicelib.http.urls"]


@pytest.mark.parametrize("module, layer", [("chalicelib", 0), ("chalicelib.store.s3", 0),
                                           ("chalicelib.events.dispatch", 1), ("chalicelib.services", 2),
                                           ("chalicelib.http.files", 3), ("app", 4), ("functions.catalog", 4)])
def test_layers_are_assigned(module: str, layer: int) -> None:
    assert layer_of(module) == layer
