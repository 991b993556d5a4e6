"""The product drives the simulator through its public entry only (``simulator``'s
``__all__``: ``start``, ``RunningSimulator``, ``StartupError``; or its command line), never
through its internal modules; ``worker`` and ``threadcast`` do not import it at all."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import simulator

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = set(simulator.__all__)


def simulator_imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Each import of the simulator package in a module: (line, what it names)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "simulator":
                    yield node.lineno, alias.name
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").split(".")[0] == "simulator"
        ):
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def offences(package: str, allowed: set[str]) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in simulator_imports(tree):
            if name not in allowed:
                found.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    return found


def test_producer_uses_only_the_simulators_public_entry() -> None:
    allowed = {"simulator"} | {f"simulator.{name}" for name in PUBLIC}
    assert offences("producer", allowed) == []


def test_worker_and_threadcast_do_not_import_the_simulator() -> None:
    assert offences("worker", set()) + offences("threadcast", set()) == []


def test_the_check_sees_internal_imports() -> None:
    source = "import simulator.process\nfrom simulator import process, start\nimport simulator\n"
    names = [name for _, name in simulator_imports(ast.parse(source))]
    assert names == ["simulator.process", "simulator.process", "simulator.start", "simulator"]


def test_the_public_entry_is_what_it_says() -> None:
    assert set(simulator.__all__) == {"start", "RunningSimulator", "StartupError"}
    assert all(hasattr(simulator, name) for name in PUBLIC)
