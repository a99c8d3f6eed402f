"""The layer rule of docs/DESIGN.md, checked on every module's imports (those inside functions too).

A module may import from its own layer and the layers its row allows, nothing above; a benchmark
package imports no other benchmark package; no two modules import each other, directly or in a
ring. The kernel also names no plugin module in a string (no ``importlib`` back door), and no
benchmark's name is written as a string outside its own package and the shapes world's suite table.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "benchmarks", "reports", "shapes", "generators", "trainers", "demo", "perf")

#: layer -> the layers it may import (its own included); the table in docs/DESIGN.md
ALLOWED: dict[str, set[str]] = {
    "kernel": {"kernel"},
    "plugins": {"kernel", "plugins"},
    "benchmarks": {"kernel", "plugins", "benchmarks"},
    "reports": {"kernel", "plugins", "reports"},
    "shapes": {"kernel", "plugins", "benchmarks", "reports", "shapes"},
    "generators": {"kernel", "plugins", "benchmarks", "shapes", "generators"},
    "trainers": {"kernel", "plugins", "benchmarks", "shapes", "trainers"},
    "apps": {"kernel", "plugins", "benchmarks", "reports", "shapes", "generators", "trainers", "apps"},
}
#: the interfaces that live beside their plugins but belong to the kernel
KERNEL_INTERFACES = {"harness.models.base", "harness.judges.base"}
#: where a benchmark's name may be written as a string besides its own package
NAME_TABLES = {"shapes/suite.py"}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if module in KERNEL_INTERFACES:
        return "kernel"
    if parts[0] == "harness":
        return "plugins" if len(parts) > 1 and parts[1] in ("models", "judges") else "kernel"
    return {"demo": "apps", "perf": "apps"}.get(parts[0], parts[0])


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, int]]:
    """(module imported, line) for every import of a project module in ``path``."""
    def resolve(target: str) -> str | None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target or None

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # ``from package import module`` imports the module; ``from module import name`` the module
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            resolved = resolve(target)
            if resolved is not None and resolved != name:
                found.append((resolved, node.lineno))
    return found


def graph(root: Path = ROOT) -> tuple[dict[str, Path], dict[str, list[tuple[str, int]]]]:
    known = modules(root)
    return known, {name: imports(name, path, known) for name, path in known.items()}


def layer_violations(known: dict[str, Path], edges: dict[str, list[tuple[str, int]]]) -> list[str]:
    problems = []
    for name, targets in edges.items():
        for target, line in targets:
            source_layer, target_layer = layer_of(name), layer_of(target)
            where = f"{known[name].relative_to(ROOT)}:{line} imports {known[target].relative_to(ROOT)}"
            if target_layer not in ALLOWED[source_layer]:
                problems.append(f"{where} ({source_layer} may not import {target_layer})")
            elif source_layer == target_layer == "benchmarks" and name.split(".")[1] != target.split(".")[1]:
                problems.append(f"{where} (one benchmark package may not import another)")
    return list(dict.fromkeys(problems))  # one line per import statement


def cycles(edges: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target, _ in edges.get(node, []):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def describe_cycle(group: list[str], known: dict[str, Path], edges: dict[str, list[tuple[str, int]]]) -> str:
    """The imports that close a ring, each as ``file:line imports file``."""
    members = set(group)
    return "; ".join(f"{known[name].relative_to(ROOT)}:{line} imports {known[target].relative_to(ROOT)}"
                     for name in group for target, line in edges[name] if target in members)


def _strings(path: Path) -> list[tuple[str, int]]:
    """String constants that are not docstrings, with their lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [(node.value, node.lineno) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_no_module_imports_a_layer_above_its_own():
    known, edges = graph()
    assert layer_violations(known, edges) == []


def test_no_import_cycles():
    known, edges = graph()
    assert [describe_cycle(group, known, edges) for group in cycles(edges)] == []


def test_the_kernel_names_no_plugin_module():
    known = modules()
    upper = tuple(f"{package}." for package in PACKAGES if package != "harness")
    named = [f"{path.relative_to(ROOT)}:{line} names {text!r}" for name, path in known.items()
             if layer_of(name) == "kernel" for text, line in _strings(path)
             if text.startswith(upper) or text.startswith(("harness.models.", "harness.judges."))]
    assert named == []


def test_benchmark_names_are_written_only_in_their_own_package():
    from harness import registry

    names = set(registry.names("benchmark"))
    assert names  # the registry found the benchmarks
    written = []
    for name, path in modules().items():
        relative = path.relative_to(ROOT).as_posix()
        if relative in NAME_TABLES:
            continue
        own = name.split(".")[1] if name.startswith("benchmarks.") and "." in name else None
        written += [f"{relative}:{line} writes {text!r}" for text, line in _strings(path)
                    if text in names and text != own]
    assert written == []


# ---- the checker itself: it must catch what it is for ---------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in PACKAGES:
        (tmp_path / package).mkdir(exist_ok=True)
    return tmp_path


@pytest.mark.parametrize("source, text, expected", [
    ("harness/runner.py", "def f():\n    from reports.leaderboard import build\n",
     "harness/runner.py:2 imports reports/leaderboard.py (kernel may not import reports)"),
    ("harness/cli.py", "import benchmarks.geneval.rescore\n",
     "harness/cli.py:1 imports benchmarks/geneval/rescore.py (kernel may not import benchmarks)"),
    ("harness/judges/x.py", "from shapes import world\n",
     "harness/judges/x.py:1 imports shapes/world.py (plugins may not import shapes)"),
    ("benchmarks/dpg/x.py", "from benchmarks.geneval.rescore import f\n",
     "benchmarks/dpg/x.py:1 imports benchmarks/geneval/rescore.py (one benchmark package may not import another)"),
])
def test_the_checker_names_both_files_of_a_forbidden_import(tmp_path, monkeypatch, source, text, expected):
    root = _tree(tmp_path, {"reports/leaderboard.py": "", "benchmarks/geneval/rescore.py": "",
                            "benchmarks/dpg/__init__.py": "", "benchmarks/geneval/__init__.py": "",
                            "shapes/world.py": "", source: text})
    monkeypatch.setattr(__import__(__name__), "ROOT", root)
    known, edges = graph(root)
    assert layer_violations(known, edges) == [expected]


def test_the_checker_finds_a_ring_of_imports(tmp_path, monkeypatch):
    root = _tree(tmp_path, {"reports/a.py": "from reports import b\n",
                            "reports/b.py": "def f():\n    import reports.c\n",
                            "reports/c.py": "from reports.a import x\n", "reports/d.py": "from reports import a\n"})
    monkeypatch.setattr(__import__(__name__), "ROOT", root)
    known, edges = graph(root)
    assert cycles(edges) == [["reports.a", "reports.b", "reports.c"]]
    assert [describe_cycle(group, known, edges) for group in cycles(edges)] == [
        "reports/a.py:1 imports reports/b.py; reports/b.py:2 imports reports/c.py; reports/c.py:1 imports reports/a.py"]
