"""The package's layers, as DEVELOPERS.md ("The layers") describes them: each package
imports only those below it, and only server/ knows uvicorn."""

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
            if node.module == "roomchat":  # from roomchat import store: the module store
                names.update(f"roomchat.{alias.name}" for alias in node.names)
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


def package_imports(package: str) -> dict[str, set[str]]:
    """``{module path: the roomchat modules it imports}`` for the modules of one package."""
    return {
        str(path.relative_to(PACKAGE)): {
            name for name in imported_modules(path) if name.startswith("roomchat.")
        }
        for path in (PACKAGE / package).rglob("*.py")
    }


def within(name: str, layers: set[str]) -> bool:
    return any(name == layer or name.startswith(layer + ".") for layer in layers)


#: What each package may import of roomchat, beyond itself (DEVELOPERS.md's layers):
#: the store, limits and ops know nothing of chat; the client stands alone; realtime/
#: knows the contract's shapes (api/schemas.py) and no route, server or wiring.
ALLOWED = {
    "store": {"roomchat.config"},
    "ops": {"roomchat.config"},
    "limits": {"roomchat.config", "roomchat.ops"},
    "client": set(),
    "realtime": {
        "roomchat.config",
        "roomchat.ops",
        "roomchat.limits",
        "roomchat.store",
        "roomchat.accounts",
        "roomchat.api.schemas",
    },
}


def test_each_package_imports_only_the_layers_below_it() -> None:
    for package, allowed in ALLOWED.items():
        layers = allowed | {f"roomchat.{package}"}
        for module, names in package_imports(package).items():
            outside = {name for name in names if not within(name, layers)}
            assert not outside, (module, outside)


def test_only_the_routes_and_the_app_see_the_app_wide_objects() -> None:
    importers = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "roomchat.services" in imported_modules(path)
    }
    assert all(path.startswith("api/") or path == "main.py" for path in importers), importers
