"""Every import threadcast makes must resolve in the interpreter running this (.ci/plain-install
runs it in a fresh virtualenv holding only the wheel and its declared dependencies).

Two checks, because each misses what the other sees:
- import every module of the four packages (pkgutil.walk_packages): what runs at import time,
  including what the third-party modules we import import in turn;
- read every import statement (ast), also those inside functions, which only run on some
  command (``threadcast demo`` imports the simulator lazily): each top-level name must be the
  standard library, one of ours, or installed from a distribution that threadcast declares.
Neither sees what a dependency imports lazily at run time (kombu's Redis transport imports
``packaging`` when a worker connects): the demo that .ci/plain-install runs next does.

Prints one line per problem and exits 1 if there is any.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import pkgutil
import re
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

PACKAGES = ("producer", "worker", "threadcast", "simulator")
# ``python -m`` entry points run the program when imported; their own imports are read below.
ENTRY_POINTS = ("__main__",)


def module_names() -> Iterator[str]:
    for package in PACKAGES:
        yield package
        path = importlib.import_module(package).__path__
        for info in pkgutil.walk_packages(path, f"{package}.", onerror=lambda _name: None):
            if info.name.rpartition(".")[2] not in ENTRY_POINTS:
                yield info.name


def import_failures() -> list[str]:
    failures = []
    for name in module_names():
        try:
            importlib.import_module(name)
        except Exception as exc:  # every kind is a finding, reported below
            where = traceback.extract_tb(exc.__traceback__)[-1]
            failures.append(
                f"import {name}: {type(exc).__name__}: {exc} ({where.filename}:{where.lineno})"
            )
    return failures


def imported_names(source: Path) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(source.read_bytes(), str(source))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno


def declared() -> set[str]:
    """The distributions threadcast's own metadata declares, extras left out: what a plain
    install promises."""
    requirements = importlib.metadata.requires("threadcast") or []
    return {_normal(r) for r in requirements if "extra ==" not in r}


def _normal(requirement: str) -> str:
    """A distribution's name as PEP 503 compares them (``PyJWT[crypto]>=2`` -> ``pyjwt``)."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    return re.sub(r"[-_.]+", "-", name.group() if name else requirement).lower()


def unresolved_statements() -> list[str]:
    """Each third-party name imported must come from a declared distribution: one that is
    merely a dependency's dependency may be dropped by the next release of that dependency."""
    known = set(sys.stdlib_module_names) | set(PACKAGES)
    ours, providers = declared(), importlib.metadata.packages_distributions()
    problems = []
    for package in PACKAGES:
        root = Path(importlib.import_module(package).__path__[0])
        for source in sorted(root.rglob("*.py")):
            for name, line in imported_names(source):
                top = name.partition(".")[0]
                if top in known:
                    continue
                found = {_normal(d) for d in providers.get(top, [])}
                if importlib.util.find_spec(top) is None:
                    problems.append(f"{source}:{line}: imports {name}: not installed")
                elif not found & ours:
                    problems.append(
                        f"{source}:{line}: imports {name} (from {', '.join(sorted(found))}), "
                        "which pyproject.toml [project].dependencies does not declare"
                    )
    return problems


def not_installed() -> list[str]:
    """Only the installed packages count, not a checkout found through the path."""
    found = {name: Path(importlib.import_module(name).__path__[0]) for name in PACKAGES}
    prefix = Path(sys.prefix).resolve()
    return [
        f"{name} comes from {where}, not from this environment ({prefix})"
        for name, where in found.items()
        if not where.resolve().is_relative_to(prefix)
    ]


def main() -> int:
    problems = not_installed() or import_failures() + unresolved_statements()
    for problem in problems:
        print(f"  {problem}")
    count = sum(1 for _ in module_names())
    print(f"{count} modules imported, their import statements read: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
