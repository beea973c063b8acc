"""The import graph of relaydance_async keeps the shape the design promises (DESIGN.md, TEAM.md).

The graph is read from the source with ``ast``, counting every import statement wherever it
sits: at module level, inside functions, and under ``if TYPE_CHECKING:`` (a cycle hidden there
is still a cycle in the design). Dynamic imports (``importlib.import_module``) are not seen.

Rules:

- no cycles between modules;
- arrows point one way by layer: models/exceptions -> _sansio -> transport/clock/_http ->
  media/coordination -> _client -> assets/webhooks/batch -> the package's front door
  (``__init__``) -> _cli; a module may import its own layer or a lower one, never a higher one;
- the emulator (``testing``) stands apart: it imports only public names of the library, and no
  library module imports it except the CLI (public names only); its pytest plugin lives inside;
- the sans-I/O core imports no asyncio, anyio, aiohttp, socket, os or time.

``KNOWN_VIOLATIONS`` lists what broke these rules when this test landed, while the layout was
being reworked (it is empty now). It may only shrink: a violation not listed fails, and so does
a listed one that has gone (remove it from the list in the same commit that fixes it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import attrs

PACKAGE = "relaydance_async"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: Layer of each top-level part of the package (higher may import lower, never the reverse).
LAYERS: dict[str, int] = {
    "models": 0,
    "exceptions": 0,
    "_version": 0,  # a leaf: the installed version string
    "_sansio": 1,
    "transport": 2,
    "clock": 2,  # the injected clock: a seam beside the transport (it may sleep)
    "_http": 2,
    "media": 3,
    # TEAM.md lists coordination beside assets/webhooks/batch, but it holds the seams the client
    # is built on (budget, timing store, completion router, leases): the client imports it and
    # it imports nothing above _http, so it sits below the client.
    "coordination": 3,
    "_client": 4,
    "assets": 5,
    "webhooks": 5,
    "batch": 5,
    "": 6,  # the package's __init__: the public front door re-exports everything below
    "_cli": 7,
    "__main__": 7,
}
APART = "testing"
#: Modules the sans-I/O core must not import (nor any submodule of them).
IO_MODULES = frozenset({"asyncio", "anyio", "aiohttp", "socket", "os", "time"})

# What broke the rules when this test landed (see the module docstring). Entries are removed,
# never added: each names one import arrow. The 31 it started with (client <-> resources,
# client -> front door/assets/webhooks, _http -> client, jobs <-> scheduler) are all gone.
KNOWN_VIOLATIONS: frozenset[str] = frozenset()


@attrs.frozen
class Import:
    """One imported thing: ``source`` imports ``target`` (a module), or ``name`` from it."""

    source: str
    target: str
    name: str | None = None
    """The name taken with ``from target import name`` when it is not a module itself."""


def module_name(path: Path, root: Path) -> str:
    """The dotted module name of ``path`` inside the package at ``root``."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_imports(root: Path) -> tuple[set[str], list[Import]]:
    """Every module of the package at ``root`` and every import statement anywhere in them."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    modules = set(files)
    found: list[Import] = []
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            found.extend(_imports_of(node, name, is_package, modules))
    return modules, found


def _imports_of(
    node: ast.AST, source: str, is_package: bool, modules: set[str]
) -> Iterator[Import]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield Import(source, alias.name)
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            package = source if is_package else source.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{node.module}" if node.module else package
        else:
            base = node.module or ""
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            if candidate in modules:
                yield Import(source, candidate)
            else:
                yield Import(source, base, alias.name)


def internal(imports: Iterable[Import], modules: set[str]) -> set[tuple[str, str]]:
    """The module -> module arrows between modules of the package."""
    return {(i.source, i.target) for i in imports if i.target in modules and i.source != i.target}


def cycle_edges(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Every arrow that lies on some cycle (both ends in one strongly connected component)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    component = _components(graph)
    return {(a, b) for a, b in edges if component[a] == component[b]}


def _components(graph: dict[str, set[str]]) -> dict[str, int]:
    # Tarjan's algorithm, iterative so a deep graph cannot hit the recursion limit.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    component: dict[str, int] = {}
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component[member] = index[node]
                    if member == node:
                        break
    return component


def part(module: str) -> str:
    """The top-level part of the package a module belongs to ('' for the package itself)."""
    rest = module[len(PACKAGE) + 1 :] if module != PACKAGE else ""
    return rest.split(".")[0]


def short(module: str) -> str:
    """A module name without the package prefix, for readable messages."""
    return module[len(PACKAGE) + 1 :] if module != PACKAGE else "__init__"


def _private(dotted: str) -> bool:
    return any(piece.startswith("_") for piece in dotted.split("."))


def violations(root: Path) -> dict[str, set[str]]:
    """Every broken rule, by rule, as readable one-line entries."""
    modules, imports = read_imports(root)
    edges = internal(imports, modules)
    found: dict[str, set[str]] = {"cycle": set(), "layer": set(), "apart": set(), "sansio": set()}
    for a, b in sorted(cycle_edges(edges)):
        found["cycle"].add(f"cycle: {short(a)} -> {short(b)}")
    for a, b in sorted(edges):
        if APART in (part(a), part(b)):
            continue
        la, lb = LAYERS[part(a)], LAYERS[part(b)]
        if lb > la:
            found["layer"].add(f"layer: {short(a)} ({la}) -> {short(b)} ({lb})")
    for i in imports:
        if not (i.target == PACKAGE or i.target.startswith(PACKAGE + ".")):
            continue
        inside = part(i.source) == APART
        into = part(i.target) == APART
        taken = i.target if i.name is None else f"{i.target}.{i.name}"
        if inside and not into and _private(taken[len(PACKAGE) + 1 :] if taken != PACKAGE else ""):
            found["apart"].add(f"apart: {short(i.source)} imports private {short(taken)}")
        if into and not inside:
            if part(i.source) not in ("_cli", "__main__"):
                found["apart"].add(f"apart: {short(i.source)} imports the emulator")
            elif _private(taken[len(PACKAGE) + 1 :]):
                found["apart"].add(f"apart: {short(i.source)} imports private {short(taken)}")
    for i in imports:
        top = i.target.split(".")[0]
        if part(i.source) == "_sansio" and top in IO_MODULES:
            found["sansio"].add(f"sansio: {short(i.source)} imports {i.target}")
    return found


def _check(rule: str) -> None:
    found = violations(ROOT)[rule]
    known = {v for v in KNOWN_VIOLATIONS if v.startswith(rule + ":")}
    new = sorted(found - known)
    gone = sorted(known - found)
    messages = []
    if new:
        messages.append("new violations (fix them; do not add them to KNOWN_VIOLATIONS):")
        messages.extend(f"  {v}" for v in new)
    if gone:
        messages.append(
            "fixed, so remove these from KNOWN_VIOLATIONS in tests/test_architecture.py:"
        )
        messages.extend(f"  {v!r}," for v in gone)
    assert not messages, "\n".join(messages)


def test_every_part_of_the_package_has_a_layer() -> None:
    """A new top-level module or subpackage must be placed in LAYERS (or be the emulator)."""
    modules, _ = read_imports(ROOT)
    unplaced = sorted({part(m) for m in modules} - set(LAYERS) - {APART})
    assert not unplaced, f"add these to LAYERS in tests/test_architecture.py: {unplaced}"


def test_no_import_cycles() -> None:
    """No module reaches itself through imports (function-local and TYPE_CHECKING included)."""
    _check("cycle")


def test_arrows_point_one_way_by_layer() -> None:
    """No module imports a module of a higher layer."""
    _check("layer")


def test_the_emulator_stands_apart() -> None:
    """testing/ imports public library names only; only the CLI imports it, by public names."""
    _check("apart")


def test_the_sansio_core_does_no_io() -> None:
    """_sansio imports no asyncio, anyio, aiohttp, socket, os or time."""
    _check("sansio")


def test_known_violations_name_real_rules() -> None:
    """Every allowlisted entry belongs to one of the rules (a typo would never match)."""
    rules = ("cycle:", "layer:", "apart:", "sansio:")
    assert all(v.startswith(rules) for v in KNOWN_VIOLATIONS)


# The reader itself, on a small package written for the purpose ----------------------------


def _write(root: Path, files: dict[str, str]) -> Path:
    package = root / PACKAGE
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return package


def test_reader_sees_local_type_checking_and_relative_imports(tmp_path: Path) -> None:
    """Function-local, TYPE_CHECKING and relative imports all become arrows; cycles are found."""
    package = _write(
        tmp_path,
        {
            "__init__.py": "",
            "models.py": "def f():\n    from relaydance_async._sansio import wire\n",
            "_sansio/__init__.py": "",
            "_sansio/wire.py": (
                "from typing import TYPE_CHECKING\n"
                "import os.path\n"
                "if TYPE_CHECKING:\n    from ..models import X\n"
            ),
            "_client/__init__.py": "from . import client\n",
            "_client/client.py": "from relaydance_async.testing import Emulator\n",
            "testing/__init__.py": "from relaydance_async._client.client import Thing\n",
        },
    )
    modules, imports = read_imports(package)
    edges = internal(imports, modules)
    wire, models = f"{PACKAGE}._sansio.wire", f"{PACKAGE}.models"
    assert (models, wire) in edges
    assert (wire, models) in edges
    assert (f"{PACKAGE}._client", f"{PACKAGE}._client.client") in edges
    assert cycle_edges(edges) == {
        (models, wire),
        (wire, models),
        (f"{PACKAGE}._client.client", f"{PACKAGE}.testing"),
        (f"{PACKAGE}.testing", f"{PACKAGE}._client.client"),
    }
    found = violations(package)
    assert found["layer"] == {"layer: models (0) -> _sansio.wire (1)"}
    assert found["sansio"] == {"sansio: _sansio.wire imports os.path"}
    assert found["apart"] == {
        "apart: _client.client imports the emulator",
        "apart: testing imports private _client.client.Thing",
    }
