"""The layers of DESIGN.md hold: imports only point down, and the engine has no import circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dmemu

PACKAGE = Path(dmemu.__file__).parent

# Each layer may import the layers after it in this list, never those before it.
LAYERS = ("faces", "pages", "elements", "dms", "protocol", "simulators")


def _layer(module: str) -> str:
    part = module.split(".")[1] if module.count(".") else ""
    return part if part in LAYERS else "faces"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported dmemu module, imported at run time) for every import in the file: all but those
    under ``if TYPE_CHECKING:``, which only type checkers run (imports inside functions run when
    the function does)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rsplit(".", 1)[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, at_run_time: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child, False)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.rsplit(".", child.level - 1)[0] if child.level > 1 else package
                    name = f"{base}.{child.module}" if child.module else base
                else:
                    name = child.module or ""
                if name.startswith("dmemu"):
                    found.append((name, at_run_time))
            elif isinstance(child, ast.Import):
                found.extend((alias.name, at_run_time) for alias in child.names if alias.name.startswith("dmemu"))
            else:
                visit(child, at_run_time)

    visit(tree, True)
    return found


def _sources() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def test_imports_only_point_down_the_layers() -> None:
    upward = []
    for module, path in _sources().items():
        own = LAYERS.index(_layer(module)) if module != "dmemu" else 0
        for imported, _ in _imports(path):
            if imported == "dmemu" or (module == "dmemu.protocol" and imported == "dmemu.dms"):
                continue  # the version; the engine's package offering the system's old names lazily
            if module == "dmemu.dms.system" and imported == "dmemu.web":
                continue  # `DataMinerSystem.serve`: the web face, imported only when called
            if LAYERS.index(_layer(imported)) < own:
                upward.append(f"{module} imports {imported}")
    assert upward == []


def test_the_simulators_share_nothing_with_the_client_side() -> None:
    for module, path in _sources().items():
        if _layer(module) == "simulators":
            assert all(_layer(imported) == "simulators" for imported, _ in _imports(path)), module


def test_no_import_circle_among_the_engine_modules_at_run_time() -> None:
    sources = {module: path for module, path in _sources().items() if _layer(module) == "protocol"}
    graph = {
        module: {imported for imported, at_run_time in _imports(path) if at_run_time and imported in sources and imported != module}
        for module, path in sources.items()
        if module != "dmemu.protocol"
    }
    seen: set[str] = set()

    def circle_from(module: str, path: tuple[str, ...]) -> tuple[str, ...] | None:
        if module in path:
            return (*path[path.index(module) :], module)
        if module in seen:
            return None
        seen.add(module)
        for imported in sorted(graph.get(module, ())):
            found = circle_from(imported, (*path, module))
            if found:
                return found
        return None

    circles = [found for module in sorted(graph) if (found := circle_from(module, ()))]
    assert circles == []


def test_importing_the_engine_loads_nothing_of_the_system() -> None:
    code = (
        "import sys, dmemu.protocol, dmemu.protocol.element, dmemu.protocol.qaction, dmemu.protocol.testing\n"
        "print(sorted(m for m in sys.modules if m.startswith('dmemu.') and not m.startswith('dmemu.protocol')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_the_system_names_still_import_from_the_engine_package() -> None:
    import dmemu.dms
    import dmemu.protocol

    for name in dmemu.dms.__all__:
        if name not in ("QActionTicketing", "SystemService"):
            assert getattr(dmemu.protocol, name) is getattr(dmemu.dms, name), name
    from dmemu.protocol import DataMinerSystem, TicketFieldError  # the README's form before dmemu.dms

    assert DataMinerSystem is dmemu.dms.DataMinerSystem and TicketFieldError is dmemu.dms.TicketFieldError


def test_the_system_loads_its_web_face_only_when_serving() -> None:
    code = (
        "import sys, tempfile, dmemu.dms, dmemu.elements.ses_inventory, dmemu.pages\n"
        "from dmemu.protocol import VirtualClock\n"
        "dms = dmemu.dms.DataMinerSystem(tempfile.mkdtemp(), VirtualClock())\n"
        "before = sorted(m for m in sys.modules if m.startswith(('dmemu.web', 'starlette', 'uvicorn')))\n"
        "dms.serve().stop(); dms.close()\n"
        "print(before, 'dmemu.web' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[] True"
