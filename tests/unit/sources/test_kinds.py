"""The layout of atlas_stream/sources/: no import cycles, and one registry entry per contract source_type."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import atlas_stream
from atlas_stream.sources.kinds import GATEWAY, POLLED_KINDS, SOURCE_KINDS, factory_for

PACKAGE = Path(atlas_stream.__file__).parent
SOURCES = PACKAGE / "sources"


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Modules of atlas_stream.sources that ``path`` imports anywhere (TYPE_CHECKING and function
    bodies included: a cycle hidden there is still a cycle for a reader)."""
    here = _module(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            out.add(target)
            out.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return {m for m in out if m.startswith("atlas_stream.sources")}


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in SOURCES.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> list[str] | None:
        if node in stack:
            return stack[stack.index(node):] + [node]
        if node in done:
            return None
        for nxt in sorted(graph[node]):
            found = visit(nxt, stack + [node])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start, [])
        if found:
            return found
    return None


def test_no_import_cycles_between_modules_of_sources() -> None:
    graph = _graph()
    assert "atlas_stream.sources.database.pass_" in graph
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_every_source_type_of_the_contract_schema_has_one_registry_entry() -> None:
    schema = json.loads((PACKAGE / "contract.schema.json").read_text())
    kinds = set(schema["properties"]["source_type"]["enum"]) - {"streaming"}  # read as "stream"
    assert set(SOURCE_KINDS) == kinds
    for kind in POLLED_KINDS:
        assert callable(factory_for(kind)), kind
        assert (SOURCES / SOURCE_KINDS[kind] / "__init__.py").is_file()
    assert factory_for("websocket") is None and factory_for("stream") is None and factory_for("ftp") is None
    assert SOURCE_KINDS["websocket"] == SOURCE_KINDS["stream"] == GATEWAY
