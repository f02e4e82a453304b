"""The package reads in the order a model flows through it (docs/ARCHITECTURE.md): ir/ at the
bottom, then frontends/ and analysis/, passes/, backends/, compiler/ on top. Imports only go
down that order and no two modules import each other, directly or around a circle; imports under
`if TYPE_CHECKING:` are annotations only and do not count."""
import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mcuforge"
RANK = {"ir": 0, "frontends": 1, "analysis": 1, "passes": 2, "backends": 3, "compiler": 4}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def imports_of(name: str, path: Path) -> set[str]:
    """The package modules `name` imports at run time (function-level imports included)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for n in ast.walk(node)}
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for n in ast.walk(tree):
        if id(n) in typing_only:
            continue
        if isinstance(n, ast.ImportFrom):
            base = package
            for _ in range(max(n.level - 1, 0)):
                base = base.rsplit(".", 1)[0]
            target = (f"{base}.{n.module}" if n.module else base) if n.level else n.module
            found |= {f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in n.names}
        elif isinstance(n, ast.Import):
            found |= {a.name for a in n.names}
    return {m for m in found if m in MODULES and m != name}


GRAPH = {m: imports_of(m, p) for m, p in MODULES.items()}


def room(name: str):
    parts = name.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in RANK else None


def cycles(graph: dict) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan) of `graph` (module -> imports)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def upward(graph: dict) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets
                  if room(a) and room(b) and RANK[room(b)] > RANK[room(a)])


def test_every_room_exists():
    assert sorted(p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()) == sorted(RANK)


def test_no_import_cycles():
    assert cycles(GRAPH) == []


def test_imports_only_go_down_the_flow():
    assert upward(GRAPH) == []


def test_the_checks_see_a_cycle_and_an_upward_import():
    """The checks above fail on a real violation: verify.py imports graph.py, so graph.py
    importing verify.py closes a circle; ir/ importing compiler/ goes up."""
    graph = {**GRAPH, "mcuforge.ir.graph": GRAPH["mcuforge.ir.graph"] | {"mcuforge.ir.verify", "mcuforge.compiler.api"}}
    assert any({"mcuforge.ir.graph", "mcuforge.ir.verify"} <= set(c) for c in cycles(graph))
    assert upward(graph) == ["mcuforge.ir.graph -> mcuforge.compiler.api"]


def test_the_top_level_package_only_reexports():
    tree = ast.parse((SRC / "__init__.py").read_text())
    assert [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))] == []


TESTS = Path(__file__).resolve().parent


def test_tests_mirror_the_package():
    """A test folder per room of the package, and one per backend."""
    rooms = [p.name for p in SRC.iterdir() if p.is_dir() and p.name in RANK]
    backends = [p.name for p in (SRC / "backends").iterdir() if (p / "__init__.py").is_file()]
    assert sorted(rooms) == sorted(RANK)
    for folder in [*rooms, *(f"backends/{b}" for b in backends)]:
        assert any((TESTS / folder).rglob("test_*.py")), f"no tests under tests/{folder}/"


def test_no_test_imports_another():
    """Shared helpers live in tests/support/, never in a test file another test imports."""
    for path in TESTS.rglob("test_*.py"):
        for n in ast.walk(ast.parse(path.read_text())):
            names = [n.module or ""] if isinstance(n, ast.ImportFrom) else \
                [a.name for a in n.names] if isinstance(n, ast.Import) else []
            assert not any(m.split(".")[-1].startswith("test_") for m in names), f"{path} imports {names}"
