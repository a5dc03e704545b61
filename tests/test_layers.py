"""Data flows one way (socket -> handlers -> channels -> backends; server/ assembles):
no module imports up the flow. Imports are read with ``ast``, so one under
``if TYPE_CHECKING:`` or inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# package -> the top-level packages it must never import
FORBIDDEN = {
    "channels": {"handlers", "server"},
    "handlers": {"server"},
}


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, dotted module name) of every absolute import in ``tree``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def upward_imports(root: Path) -> list[str]:
    """``path:line imports module`` for each import that runs up the flow."""
    bad = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for line, module in imported_modules(tree):
                top = module.split(".")[0]
                if top in forbidden:
                    bad.append(f"{path.relative_to(root)}:{line} imports {module}")
    return bad


def test_no_import_runs_up_the_flow() -> None:
    """handlers/ never imports server/; channels/ never imports handlers/ or server/."""
    assert upward_imports(ROOT) == []


def test_checker_sees_every_form_of_import(tmp_path: Path) -> None:
    """The checker finds plain, from-, TYPE_CHECKING and function-local upward imports."""
    (tmp_path / "handlers").mkdir()
    (tmp_path / "channels").mkdir()
    (tmp_path / "handlers" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nimport channels.hub\nif TYPE_CHECKING:\n    from server.settings import Settings\n"
    )
    (tmp_path / "channels" / "b.py").write_text(
        "import server.app as app\n\ndef f():\n    from handlers import session\n"
    )
    assert upward_imports(tmp_path) == [
        "channels/b.py:1 imports server.app",
        "channels/b.py:4 imports handlers",
        "handlers/a.py:4 imports server.settings",
    ]
