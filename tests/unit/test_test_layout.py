"""The suite's own layout (shared helpers live in tests/conftest.py and tests/helpers/, and
no test module imports another) and a README that never points outside the repository."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return out


def test_no_test_module_imports_another() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        for module in _imported_modules(path):
            leaf = module.rsplit(".", 1)[-1]
            if module.startswith("tests.") and leaf.startswith("test_"):
                offenders.append(f"{path.relative_to(TESTS.parent)} imports {module}")
    assert not offenders, "move shared code to tests/helpers/:\n" + "\n".join(offenders)


def test_the_check_sees_an_import_of_a_test_module(tmp_path: Path) -> None:
    bad = tmp_path / "test_x.py"
    bad.write_text("from tests.integration.test_train_cli import TINY\nimport tests.unit.test_a\n")
    assert _imported_modules(bad) == {"tests.integration.test_train_cli", "tests.unit.test_a"}


def test_the_readme_and_the_docs_never_point_outside_the_repository() -> None:
    """Users never have the development folder beside the checkout: every real-data example
    names a bundled sample or a downloaded data set."""
    root = TESTS.parent
    lines = [
        f"{page.relative_to(root)}:{i}: {line}"
        for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]
        for i, line in enumerate(page.read_text().splitlines(), 1)
        if "../shared" in line
    ]
    assert not lines, "these point outside the repository:\n" + "\n".join(lines)


def test_the_readme_stays_a_short_guide() -> None:
    """The reference lives in docs/ (the site mkdocs.yml builds); the README keeps what a
    newcomer needs first, and every page it lists exists."""
    readme = (TESTS.parent / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    import re

    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (TESTS.parent / target).exists(), target


def test_a_test_cannot_replace_the_test_budget_by_accident() -> None:
    from tests.helpers.cli import tiny_only

    assert tiny_only(["budget.max_epochs=12", "text=none"]) == ["budget.max_epochs=12", "text=none"]
    for other in ("budget=full", "budget=quick", "+budget=smoke"):
        try:
            tiny_only([other])
        except AssertionError as exc:
            assert "replaces TINY's budget=smoke" in str(exc)
        else:
            raise AssertionError(f"{other} was let through")
