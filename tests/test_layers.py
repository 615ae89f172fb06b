"""The house rules that imports can break, read from the code itself.

- One direction: storage <- engine <- bot <- bench. No package imports one above it, and
  nothing imports bench (the `gptstore bench` command finds it by name at run time).
- bot never reaches past the engine: no storage, torch, transformers, peft, sqlalchemy or
  sqlmodel import anywhere in bot/.
- No import circles between the project's modules.
- torch, transformers and peft stay in the engine modules that train or generate.

Every import counts, including those inside functions and under TYPE_CHECKING: an import
moved into a function still ties the two modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("storage", "engine", "bot", "bench")  # bottom to top
RANK = {name: rank for rank, name in enumerate(PACKAGES)}
HEAVY = {"torch", "transformers", "peft"}
BOT_MAY_NOT = {"storage", "sqlalchemy", "sqlmodel", *HEAVY}
# Where torch, transformers and peft may be imported (path prefixes).
HEAVY_OK = ("engine/training/", "engine/serving/", "engine/workflows/", "engine/weights.py",
            "engine/testing.py", "bench/")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                found[module_name(path)] = path
    return found


def imported_names(path: Path, package: str) -> list[str]:
    """Every module name the file imports ("a.b" for `from a import b` where b is a name)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names]
    return names


def graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports."""
    modules = project_modules()
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for imported in imported_names(path, package):
            if imported in modules and imported != name:
                targets.add(imported)
        edges[name] = targets
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_package_imports_one_above_it() -> None:
    wrong = []
    for name, targets in graph().items():
        for target in targets:
            if RANK[target.split(".")[0]] > RANK[name.split(".")[0]]:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_bot_reaches_storage_and_the_model_libraries_only_through_the_engine() -> None:
    wrong = []
    for name, path in project_modules().items():
        if name.split(".")[0] != "bot":
            continue
        for imported in imported_names(path, name):
            if imported.split(".")[0] in BOT_MAY_NOT:
                wrong.append(f"{name} imports {imported}")
    assert sorted(set(wrong)) == []


def test_there_are_no_import_circles() -> None:
    assert circles(graph()) == []


def test_heavy_libraries_stay_in_the_model_modules() -> None:
    wrong = []
    for name, path in project_modules().items():
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(HEAVY_OK):
            continue
        for imported in imported_names(path, name):
            if imported.split(".")[0] in HEAVY:
                wrong.append(f"{rel} imports {imported}")
    assert sorted(set(wrong)) == []


def test_the_checks_see_what_they_guard_against(tmp_path: Path) -> None:
    """The circle finder and the import reader catch what a careless change would add."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from storage import events\n    import torch\n")
    assert {"storage", "storage.events", "torch"} <= set(imported_names(source, "bot"))
