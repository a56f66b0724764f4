"""Where MLflow's rules live, what the services return, and what their facades do (issue 8, items 4-6).

Read from the source (ast), so a rule written a second time, a stored form named like a wire form,
or logic creeping back into a facade fails here, whatever the tests of behaviour say.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "chalicelib"
HOME = PACKAGE / "mlflowapi"
MLFLOW_AREAS = ("mlflowapi", "tracking", "registry", "http")


def _modules(*areas: str) -> dict[str, ast.Module]:
    roots = [PACKAGE / a for a in areas] if areas else [PACKAGE]
    return {str(p.relative_to(PACKAGE)): ast.parse(p.read_text(), str(p))
            for root in roots for p in sorted(root.rglob("*.py"))}


def _strings(tree: ast.AST) -> list[str]:
    """String literals, f-strings' literal parts included."""
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


# -- item 4: one home for MLflow's rules --------------------------------------------------------------
MESSAGES = ["must be in the 'active' state", "Invalid model version source", "Registered Model with name=",
            "Run with id=", "Logged model with ID", "Missing value for required parameter",
            "already exists", "Model Version (name=", "for parameter 'status'"]


@pytest.mark.parametrize("message", MESSAGES)
def test_each_shared_message_is_written_once_in_the_errors_module(message: str) -> None:
    found = [path for path, tree in _modules(*MLFLOW_AREAS).items() for text in _strings(tree) if message in text]
    assert set(found) == {"mlflowapi/errors.py"}, found


RULES = ["MlflowError", "STATUS", "Fields", "now_ms", "page_token", "page_offset", "envelope_size", "Page",
         "model_name", "model_version", "model_alias", "model_stage", "artifact_path", "fully_decoded",
         "max_results", "parse_filter", "parse_order_by", "text", "check_flag", "check_name", "check_tag",
         "_capped", "_max_results", "_fully_unquoted"]


def _definitions(name: str) -> list[str]:
    """Modules defining ``name`` at their top level (a function, class or constant)."""
    out = []
    for path, tree in _modules(*MLFLOW_AREAS).items():
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
                out.append(path)
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                out.append(path)
    return out


@pytest.mark.parametrize("name", RULES)
def test_each_protocol_rule_is_defined_once_in_the_home(name: str) -> None:
    found = _definitions(name)
    if name in ("text", "check_flag", "check_name", "check_tag", "_capped", "_max_results", "_fully_unquoted"):
        assert found == [], found  # the registry's own copies of the rules: gone
    else:
        assert len(found) == 1, found
        assert found[0].startswith("mlflowapi/"), found


def _imported(path: str, tree: ast.Module) -> list[str]:
    """Absolute names of the modules ``path`` (relative to the package) imports."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = ("chalicelib/" + path).split("/")[:-node.level]
                out.append(".".join(package + ([node.module] if node.module else [])))
            else:
                out.append(node.module or "")
    return out


def test_the_home_depends_on_no_service_store_or_framework() -> None:
    """The rules can be read, tested and reused without a store, a service, chalice or mlflow."""
    modules = _modules("mlflowapi")
    assert {"mlflowapi/errors.py", "mlflowapi/fields.py", "mlflowapi/validation.py", "mlflowapi/pages.py",
            "mlflowapi/search/grammar.py"} <= set(modules)
    for path, tree in modules.items():
        for name in _imported(path, tree):
            parts = name.split(".")
            assert parts[0] not in ("chalice", "mlflow", "boto3", "botocore"), (path, name)
            if parts[0] == "chalicelib":
                assert name.startswith("chalicelib.mlflowapi") or name in ("chalicelib.bounds", "chalicelib.like"), \
                    (path, name)


# -- item 5: entities inside, the wire form at the edge, distinct names ---------------------------------
def test_stored_and_wire_forms_have_distinct_names() -> None:
    """``to_record``/``from_record``: the stored form; ``to_wire``: MLflow's REST form; nothing is ``to_json``."""
    for path, tree in _modules(*MLFLOW_AREAS).items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                assert node.name not in ("to_json", "from_json", "doc", "from_doc", "model_view",
                                         "version_message", "model_message", "run_json", "run_info_json"), \
                    (path, node.name)


# -- item 6: services split by concern, behind thin facades with MLflow's method names -----------------
@pytest.mark.parametrize("facade", ["tracking/service.py", "registry/service.py"])
def test_facades_only_delegate(facade: str) -> None:
    tree = _modules()[facade]
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    assert len(classes) == 1
    methods = [n for n in classes[0].body if isinstance(n, ast.FunctionDef) and not n.name.startswith("__")]
    assert len(methods) >= 18
    for method in methods:
        body = [s for s in method.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        assert len(body) == 1, (facade, method.name)
        assert isinstance(body[0], (ast.Return, ast.Expr)), (facade, method.name)
        call = body[0].value
        assert isinstance(call, (ast.Call, ast.Attribute)), (facade, method.name)
