"""The package's layers, as DEVELOPERS.md describes them: only server/ knows uvicorn."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "backend" / "roomchat"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_nothing_but_server_imports_uvicorn() -> None:
    importers = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if any(name.split(".")[0] == "uvicorn" for name in imported_modules(path))
    }
    allowed = {path for path in importers if path.startswith("server/")}
    # The command line starts uvicorn (``roomchat serve``); it reaches no internals.
    assert importers - allowed <= {"cli.py"}, importers - allowed
    assert allowed, "server/ is where uvicorn is known"


def test_realtime_sees_the_server_only_through_its_sink() -> None:
    for path in (PACKAGE / "realtime").rglob("*.py"):
        for name in imported_modules(path):
            assert not name.startswith(("uvicorn", "roomchat.server")), (path.name, name)
