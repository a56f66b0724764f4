"""The test suite's own shape: helpers apart from tests, and asserts that say which condition failed."""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PYTEST_FILES = {"conftest.py", "__init__.py"}


def stray_modules(root: Path) -> list[str]:
    """Modules among the tests that are neither tests nor pytest's own files (helpers go to helpers/)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                  if "helpers" not in p.relative_to(root).parts[:1]
                  and not p.name.startswith("test_") and p.name not in PYTEST_FILES)


def conftest_imports(root: Path) -> list[str]:
    """Imports of a conftest.py as a module: pytest loads those itself; what tests share is a helper."""
    out = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == "conftest":
                out.append(f"{path.relative_to(root)}:{node.lineno}")
    return sorted(out)


def joined_asserts(root: Path) -> list[str]:
    """``assert a and b``: a failure would not say which of them failed."""
    out = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assert) and isinstance(node.test, ast.BoolOp) and isinstance(node.test.op, ast.And):
                out.append(f"{path.relative_to(root)}:{node.lineno}")
    return sorted(out)


def test_helpers_live_in_tests_helpers() -> None:
    assert stray_modules(TESTS) == []


def test_no_test_imports_a_conftest() -> None:
    assert conftest_imports(TESTS) == []


def test_no_assert_joins_conditions_with_and() -> None:
    assert joined_asserts(TESTS) == []
