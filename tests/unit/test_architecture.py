"""The package's floors, read from its source with ``ast`` (nothing is imported).

Every import counts, also one inside a function: a lazy import is still a dependency. A module
imports only from its own floor or below, no import cycle exists, no module is named like a
package or like a function of the API, and no function outside ``cli/`` is longer than
:data:`MAX_LINES` unless its docstring says why (a line starting ``Kept whole:``).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "fusion_tuner"

# The floors, lowest first: config -> data -> models -> rundir -> training -> search / analysis /
# inference / exports / slurm -> sweeps -> compose -> cli. Keys are module prefixes (the longest
# matching prefix wins).
FLOORS = {
    # the ground floor: small helpers that import nothing above them
    "errors": 0,
    "io": 0,
    "words": 0,
    "markdown": 0,
    "document": 0,
    "provenance": 0,
    "runtime": 0,
    "metrics": 0,
    "rerun": 0,
    "launch": 0,
    "paths": 0,
    "packaged": 0,
    "decision": 0,  # the single-comparison rule: plain statistics
    "config": 1,
    "checkpoint": 2,  # the checkpoint file format (reads with the schema)
    "data": 2,
    "models": 3,
    "rundir": 4,
    "training": 5,
    "search": 6,
    "analysis": 6,
    "inference": 6,
    "exports": 6,
    "slurm": 6,
    # the module that assembles one run sits above search: it reports to a search's study
    "training.run": 6.5,
    "sweeps": 7,
    "compose": 8,
    "cli": 9,
    # run-only ``python -m fusion_tuner.<command>`` files and package entry points
    "analyze": 9,
    "predict": 9,
    "export": 9,
    "report": 9,
    "summary": 9,
    "__main__": 9,
    "data.__main__": 9,
}
RUN_ONLY = ("analyze", "predict", "export", "report", "summary")
API = (
    "compose_config",
    "build_datamodule",
    "build_model",
    "train",
    "load_run",
    "load_checkpoint",
    "predict",
)
MAX_LINES = 60


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _target(name: str) -> str | None:
    """The module of ``fusion_tuner`` that an imported dotted name lives in (None: outside)."""
    if name != "fusion_tuner" and not name.startswith("fusion_tuner."):
        return None
    rel = name.removeprefix("fusion_tuner").lstrip(".")
    while rel and rel not in MODULES:
        rel = rel.rpartition(".")[0]
    return rel


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (relative to ``fusion_tuner``; "" the root)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = ["fusion_tuner", *package.split(".")] if package else ["fusion_tuner"]
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                names = [f"{base}.{a.name}" for a in node.names] + [base]
            for name in names:
                target = _target(name)
                if target is not None and target != module:
                    graph[module].add(target)
    return graph


def floor(module: str) -> float:
    prefix = module
    while prefix:
        if prefix in FLOORS:
            return FLOORS[prefix]
        prefix = prefix.rpartition(".")[0]
    raise KeyError(module)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
                found.append(sorted(component))

    for v in sorted(set(graph).union(*graph.values())):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_every_module_has_a_floor():
    assert [m for m in MODULES if m and _has_no_floor(m)] == []


def _has_no_floor(module: str) -> bool:
    try:
        floor(module)
    except KeyError:
        return True
    return False


def test_no_import_upward():
    upward = [
        f"{a} (floor {floor(a)}) imports {b} (floor {floor(b)})"
        for a, targets in sorted(import_graph().items())
        for b in sorted(targets)
        if a and b and floor(b) > floor(a)
    ]
    assert upward == []


def test_no_module_is_named_like_a_package():
    packages = {p.name for p in PACKAGE.rglob("*") if p.is_dir() and (p / "__init__.py").exists()}
    clashes = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.stem in packages]
    assert clashes == []


def test_no_importable_module_is_named_like_an_api_function():
    """``fusion_tuner.predict`` is the API function: the file of that name only runs as
    ``python -m fusion_tuner.predict`` and refuses to be imported, so it can never replace the
    function on the package."""
    import fusion_tuner

    assert set(API) == set(fusion_tuner.__all__) - {"__version__"}
    top = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()
    }
    for name in top & set(API):
        assert name in RUN_ONLY, name
    for name in RUN_ONLY:
        source = (PACKAGE / f"{name}.py").read_text()
        assert 'if __name__ != "__main__":\n    raise ImportError(' in source, name


def test_a_run_only_command_file_refuses_import_and_the_function_stays():
    import fusion_tuner

    with pytest.raises(
        ImportError, match=re.escape("only runs as 'python -m fusion_tuner.predict'")
    ):
        import fusion_tuner.predict
    assert callable(fusion_tuner.predict) and fusion_tuner.predict.__module__.startswith(
        "fusion_tuner.inference"
    )


def long_functions(root: Path = PACKAGE) -> list[str]:
    """Functions over MAX_LINES lines (outside ``cli/``) whose docstring gives no reason."""
    out = []
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            doc = ast.get_docstring(node) or ""
            reason = any(line.strip().startswith("Kept whole:") for line in doc.splitlines())
            if length > MAX_LINES and not reason:
                out.append(f"{path.relative_to(root)}::{node.name} ({length} lines)")
    return out


def test_the_length_check_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "m.py").write_text(f"def long():\n{body}\n\n\ndef short():\n    return 1\n")
    assert long_functions(tmp_path) == [f"m.py::long ({MAX_LINES + 1} lines)"]
    (tmp_path / "m.py").write_text(f'def long():\n    """Kept whole: a reason."""\n{body}\n')
    assert long_functions(tmp_path) == []


def test_no_long_function_without_a_reason():
    assert long_functions() == []
