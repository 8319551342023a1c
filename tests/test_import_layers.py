"""Layers only point down: no import cycle among resthooks' modules, lazy imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src" / "resthooks"


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every module ``module`` imports at run time: top level or inside a function (a lazy
    import that hides a cycle is still a cycle), but not under ``if TYPE_CHECKING``."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            test = node.test
            if getattr(test, "id", None) == "TYPE_CHECKING":
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in known else target)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(alias.name for alias in node.names)

    Visitor().visit(ast.parse(path.read_text(encoding="utf-8")))
    # A package importing its own submodules (re-exports) is not a layer pointing up.
    return {m for m in found if m in known and m != module and not m.startswith(module + ".")}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return cycles


def test_the_core_has_no_import_cycle() -> None:
    """No chain of imports leads from a module of the core back to itself (dispatcher and
    worker, cli and the demo included); framework integrations under contrib are their own."""
    known = _modules()
    edges = {
        m: _imports(m, p, known) for m, p in known.items() if not m.startswith("resthooks.contrib")
    }
    edges = {m: {t for t in ts if t in edges} for m, ts in edges.items()}
    assert _cycles(edges) == []


@pytest.mark.parametrize(
    ("importer", "imported"),
    [("resthooks.worker", "resthooks.dispatcher"), ("resthooks._demo", "resthooks.cli")],
)
def test_the_cycles_issue_12_named_are_gone(importer: str, imported: str) -> None:
    """The worker does not import the Dispatcher's module, nor the demo the CLI's."""
    known = _modules()
    assert imported not in _imports(importer, known[importer], known)


def test_the_cycle_check_sees_a_lazy_cycle() -> None:
    """The check itself: a function-level import back is a cycle."""
    assert _cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]


# Private names of other libraries (or public ones spelled with an underscore) that resthooks
# reads on purpose, each with its reason.
FOREIGN_PRIVATE = {
    "_replace",  # NamedTuple's public API
    "_meta",  # Django's public model API
    "_get_current_object",  # Flask's LocalProxy, the documented way to the real app
    "_dns_host",  # urllib3's HTTPConnection: the name it dials (the pinning seam, see NOTES)
    "_new_conn",  # the same seam
    "_retry_connection",  # aiohttp's ClientSession: turn its silent retry off
    "_out",  # Django's OutputWrapper: the stream behind it
}


def _private_names(tree: ast.AST) -> set[str]:
    """The underscore names a module defines: functions, classes, module globals and the
    attributes its code assigns on ``self``/``cls``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id in {"self", "cls"}
        ):
            names.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _reaches(module: str, tree: ast.AST, others: set[str], known: dict[str, Path]) -> list[str]:
    """Where ``module`` uses a private name that only another resthooks module defines:
    ``thing._name`` on anything but ``self``/``cls``, or ``from .x import _name``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in others:
            if not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}):
                found.append(f"{module}:{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and (
            node.level or (node.module or "").split(".")[0] == "resthooks"
        ):  # another library's private names are that library's business (FOREIGN_PRIVATE)
            for alias in node.names:
                name = alias.name
                is_module = any(m.endswith("." + name) for m in known)
                if name.startswith("_") and not name.startswith("__") and not is_module:
                    found.append(f"{module}:{node.lineno}: import {name}")
    return found


def test_no_module_reaches_into_another_modules_private_names() -> None:
    """A module uses what another module of resthooks made public, never its underscore
    names (issue 12: the asyncio face called the Dispatcher's _claim_due, _add_waker and
    _prepare_emit): a decision two modules need lives where both can call it."""
    known = _modules()
    trees = {m: ast.parse(p.read_text(encoding="utf-8")) for m, p in known.items()}
    defined = {m: _private_names(t) for m, t in trees.items()}
    reaching = []
    for module, tree in trees.items():
        elsewhere = set().union(*(names for m, names in defined.items() if m != module))
        others = elsewhere - defined[module] - FOREIGN_PRIVATE
        reaching += _reaches(module, tree, others, known)
    assert reaching == []


def test_the_private_name_check_sees_a_reach() -> None:
    """The check itself: an attribute another module defines privately is found."""
    tree = ast.parse("def f(engine):\n    return engine._claim_due(limit=1)\n")
    assert _reaches("m", tree, {"_claim_due"}, {}) == ["m:2: ._claim_due"]
