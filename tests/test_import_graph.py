"""The import graph stays a house with floors: no cycle among the project's modules (counting
imports placed inside functions), anfe's rooms import only the rooms below them, and no test or
bench edits ``sys.path`` or imports a test file. Read with ``ast``: nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("anfe", "curation", "scraper", "workflow", "testkit")
#: anfe's rooms, lowest first: a room imports only the rooms before it (and the ``anfe`` top is the API).
ROOMS = ("anfe.core", "anfe.faces", "anfe.models", "anfe.exchange", "anfe.cli")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def import_graph() -> dict[str, set[str]]:
    """Each project module's imports of other project modules, wherever the import statement is."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(name, path.name == "__init__.py", node):
                    while target and target not in modules:
                        target = target.rpartition(".")[0]
                    if target and target != name and not name.startswith(target + "."):
                        graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _room(module: str) -> int | None:
    for level, room in enumerate(ROOMS):
        if module == room or module.startswith(room + "."):
            return level
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_each_room_of_anfe_imports_only_the_rooms_below_it():
    upward = [f"{module} -> {target}" for module, targets in import_graph().items() for target in targets
              if _room(module) is not None and _room(target) is not None and _room(target) > _room(module)]
    assert upward == []


def test_anfe_imports_neither_scrapy_nor_streamlit_nor_the_layers_above():
    above = ("curation", "scraper", "workflow", "testkit", "scrapy", "streamlit")
    found = []
    for path in (ROOT / "anfe").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in above]
    assert found == []


def test_no_sys_path_edits_and_no_test_imports_another_test_file():
    offences = []
    for folder in ("tests", "bench", "testkit", *PACKAGES):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", "") == "sys":
                    offences.append(f"{path.relative_to(ROOT)}:{node.lineno}: sys.path")
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                    offences += [f"{path.relative_to(ROOT)}:{node.lineno}: imports {n}" for n in names
                                 if n.split(".")[-1].startswith(("test_", "conftest"))]
    assert offences == []
