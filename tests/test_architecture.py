"""The design, held by a test: which top-level package may import which, and the rules
the review of the layering asked for (issue 18, "Design").

Only the source is read (``ast``): nothing is imported, so the test is fast and sees
every import, those under ``TYPE_CHECKING`` and inside functions too. The table below
is the one in README.md ("How it works"); change both together.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The layers, top first. A package imports only packages of the layers below its own:
#: never one of its own layer, never one above (so there can be no cycle either).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("service", "migrations"),  # the composition root, process launcher, retention; Alembic
    ("web",),  # HTTP: routes, schemas, auth, SSE, the console
    ("cluster", "webhooks"),  # membership, LISTEN/NOTIFY, claims; the webhook outbox's sender
    ("store",),  # PostgreSQL: the journal, the tasks, the cluster's statements
    ("supervisor",),  # the task vocabulary, actors, supervision, the door, ports, claims
    ("speech", "transcripts"),  # the engines and stages; transcript exports
    ("ops",),  # metrics, log formats: nothing of the task
)
PACKAGES = frozenset(name for layer in LAYERS for name in layer)
RANK = {name: rank for rank, layer in enumerate(LAYERS) for name in layer}

#: What only the composition root builds: a module of web/ that constructs one of these
#: is wiring the service, not answering HTTP.
COMPOSITION = frozenset({"Supervisor", "PgJournal", "ClusterMember", "Membership", "EventHub"})
#: The supervisor's members that only the door (inside supervisor/) may use.
DOOR_ONLY = frozenset({"cancel_offline", "ownership", "on_ended", "add_ended_listener"})


@dataclass(frozen=True)
class Import:
    """One import statement of a module: where it is and the module it names."""

    path: Path
    line: int
    module: str

    @property
    def package(self) -> str:
        return self.module.split(".")[0]

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line} imports {self.module}"


def _modules(package: str) -> Iterator[Path]:
    found = sorted((ROOT / package).rglob("*.py"))
    yield from (path for path in found if "__pycache__" not in path.parts)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports(path: Path, *, names: bool = False) -> Iterator[Import]:
    """Absolute imports of ``path`` (a relative one stays inside its package); with
    ``names``, each name of a ``from`` import as well (it may be a module)."""
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield Import(path, node.lineno, node.module)
            for alias in (
                node.names if names else ()
            ):  # ``from supervisor import facts`` names a module
                yield Import(path, node.lineno, f"{node.module}.{alias.name}")


def _between_packages() -> dict[tuple[str, str], list[Import]]:
    """Every import of one top-level package by another, by (importer, imported)."""
    edges: dict[tuple[str, str], list[Import]] = {}
    for package in sorted(PACKAGES):
        for path in _modules(package):
            for found in _imports(path):
                if found.package in PACKAGES and found.package != package:
                    edges.setdefault((package, found.package), []).append(found)
    return edges


def _named(node: ast.expr) -> str:
    """The last name of ``x``, ``a.x`` or ``self._x`` (empty for anything else)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _is(node: ast.expr, what: str) -> bool:
    """Whether ``node`` is named ``what`` (``door``, ``self._door``, ``app.door``...)."""
    return _named(node).lstrip("_") == what


def test_the_table_names_every_top_level_package_and_only_those() -> None:
    on_disk = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests"}
    assert on_disk <= PACKAGES, f"place these in LAYERS: {sorted(on_disk - PACKAGES)}"
    missing = sorted(name for name in PACKAGES if not any(_modules(name)))
    assert not missing, f"no such package (renamed?): {missing}"


def test_no_import_cycle_between_top_level_packages() -> None:
    edges = _between_packages()
    graph: dict[str, set[str]] = {}
    for importer, imported in edges:
        graph.setdefault(importer, set()).add(imported)
    cycles: list[str] = []

    def visit(package: str, path: list[str]) -> None:
        for following in sorted(graph.get(package, ())):
            if following == path[0]:
                sites = [
                    str(edges[a, b][0]) for a, b in zip(path, [*path[1:], following], strict=True)
                ]
                cycles.append(" -> ".join([*path, following]) + ": " + "; ".join(sites))
            elif following not in path and following > path[0]:  # each cycle once
                visit(following, [*path, following])

    for package in sorted(graph):
        visit(package, [package])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_each_package_imports_only_the_layers_below_it() -> None:
    upward = [
        f"{found} ({imported} is not below {importer})"
        for (importer, imported), sites in sorted(_between_packages().items())
        if RANK[imported] <= RANK[importer]
        for found in sites
    ]
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_web_is_http_only_no_background_loop_and_no_wiring() -> None:
    """web/ answers requests. The loops (webhook delivery, retention), the process
    launcher and the composition root that builds and runs it all live elsewhere."""
    found: list[str] = []
    for path in _modules("web"):
        where = path.relative_to(ROOT)
        for imported in _imports(path, names=True):
            if imported.package == "service" or imported.module.startswith("webhooks.delivery"):
                found.append(f"{imported} (a background loop or the composition root)")
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.AsyncFunctionDef) and item.name == "run":
                        found.append(f"{where}:{item.lineno} {node.name}.run is a loop")
            elif isinstance(node, ast.Call):
                name = _named(node.func)
                if name == "fork":
                    found.append(f"{where}:{node.lineno} forks processes")
                elif name in COMPOSITION:
                    found.append(f"{where}:{node.lineno} builds a {name} (composition)")
    assert not found, "web/ is HTTP only:\n" + "\n".join(found)


def test_nothing_outside_the_supervisor_reaches_past_the_door() -> None:
    """The door is the only way in: nobody outside supervisor/ takes the supervisor
    from the door, uses what only the door may use, or touches a private member."""
    found: list[str] = []
    for package in sorted(PACKAGES - {"supervisor"}):
        for path in _modules(package):
            where = path.relative_to(ROOT)
            for node in ast.walk(_tree(path)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "supervisor"
                ):
                    private = [a.name for a in node.names if a.name.startswith("_")]
                    if private:
                        found.append(f"{where}:{node.lineno} imports private {private}")
                if not isinstance(node, ast.Attribute):
                    continue
                owner = node.value
                if node.attr == "supervisor" and _is(owner, "door"):
                    found.append(f"{where}:{node.lineno} takes the supervisor from the door")
                elif _is(owner, "supervisor") and node.attr in DOOR_ONLY:
                    found.append(f"{where}:{node.lineno} uses the door's supervisor.{node.attr}")
                elif (_is(owner, "supervisor") or _is(owner, "door")) and _private(node.attr):
                    found.append(f"{where}:{node.lineno} uses the private .{node.attr}")
    assert not found, "past the door:\n" + "\n".join(found)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")
