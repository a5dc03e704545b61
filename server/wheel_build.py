"""Build step of the wheel: Squall's packages go under one ``squall`` package.

The checkout keeps the owner's layout (``server/``, ``handlers/``,
``channels/``, ``loadtest/``, ``static/`` at the top, imported as top-level
names by run.py and the tests). Installed, those names would clash:
``channels`` is Django Channels' package and ``server``/``handlers`` are
generic. So the wheel maps each directory to ``squall.<name>`` and this step
rewrites the code's absolute imports of them (``from channels.hub import``
becomes ``from squall.channels.hub import``) in the built copy only; the
checkout is never touched. An import form it cannot rewrite safely fails the
build instead of shipping a module that would import a foreign package.
Why this design: docs/DEPENDENCIES.md ("Packaging").
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path
from typing import Any

from setuptools.command.build_py import build_py

ROOT_PACKAGE = "squall"
OWN_PACKAGES = ("server", "handlers", "channels", "loadtest")

INIT = '''"""Squall, installed: a real-time messaging server speaking Centrifugo's client protocol.

The packages of the checkout live here as ``squall.server``, ``squall.handlers``,
``squall.channels`` and ``squall.loadtest``; hooks for your own package are in
:mod:`squall.hooks`. The command is ``squall`` (``python -m squall``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("squall")
except PackageNotFoundError:  # pragma: no cover - unpacked without metadata
    __version__ = "0+unknown"
'''

HOOKS = '''"""What a hooks module of your own imports (``hooks = "mypkg.hooks:make"``).

``make()`` returns a :class:`Hooks`; raise :class:`SquallError` (or one of
its subclasses) to refuse with that error, :class:`Disconnect` to end the
connection. See squall.handlers.hooks for every hook's signature.
"""

from squall.channels.errors import Disconnect, DisconnectCode, PermissionDenied, SquallError
from squall.channels.types import ClientInfo
from squall.handlers.hooks import ClientSender, ConnectDecision, ConnectEvent, Hooks

__all__ = [
    "ClientInfo", "ClientSender", "ConnectDecision", "ConnectEvent", "Disconnect", "DisconnectCode", "Hooks",
    "PermissionDenied", "SquallError",
]
'''

MAIN = '''"""``python -m squall``: the same as the ``squall`` command."""

import sys

from squall.server.cli import main

sys.exit(main())
'''


class UnsupportedImport(Exception):
    """An import of Squall's own packages in a form the build cannot rewrite."""


def rewrite_imports(source: str, filename: str = "<source>") -> str:
    """Prefix absolute imports of Squall's own packages with ``squall.``."""
    tree = ast.parse(source, filename)
    lines = source.splitlines(keepends=True)
    edits: list[tuple[int, int, str, str]] = []  # (line index, col, old, new)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top = node.module.split(".")[0]
            if top in OWN_PACKAGES:
                edits.append((node.lineno - 1, node.col_offset, node.module, f"{ROOT_PACKAGE}.{node.module}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top not in OWN_PACKAGES:
                    continue
                if alias.asname is None:  # `import channels.x` binds `channels`: code would use the bare name
                    raise UnsupportedImport(f"{filename}:{node.lineno}: `import {alias.name}` without `as`")
                edits.append((node.lineno - 1, node.col_offset, alias.name, f"{ROOT_PACKAGE}.{alias.name}"))
    for index, col, old, new in sorted(edits, reverse=True):
        line = lines[index]
        pattern = re.compile(r"(?<![\w.])" + re.escape(old) + r"(?![\w.])")
        match = pattern.search(line, col)
        if match is None:  # e.g. a module name split over lines with backslashes
            raise UnsupportedImport(f"{filename}:{index + 1}: cannot find {old!r} on the import's line")
        lines[index] = line[: match.start()] + new + line[match.end() :]
    return "".join(lines)


def subpackages(package_dir: dict[str, str], root: Path) -> list[str]:
    """Every package below the mapped ones (``handlers/proto`` -> ``squall.handlers.proto``).

    pyproject.toml lists only the mapped top packages; a subpackage another
    engineer adds must ship without anyone editing the packaging.
    """
    out = []
    for name, rel in package_dir.items():
        if not name.startswith(ROOT_PACKAGE + ".") or name.count(".") != 1:
            continue
        base = root / rel
        for init in sorted(base.rglob("__init__.py")):
            sub = init.parent.relative_to(base)
            if sub.parts and "__pycache__" not in sub.parts:
                out.append(".".join((name, *sub.parts)))
    return out


class BuildPy(build_py):
    """setuptools' build_py, then the rewrite and the ``squall`` package's own modules.

    Its package list (which sdist reads too) gains every subpackage.
    """

    def finalize_options(self) -> None:
        super().finalize_options()
        listed: list[str] = list(getattr(self, "packages", None) or [])
        found = subpackages(dict(self.distribution.package_dir or {}), Path.cwd())
        self.packages = listed + [p for p in found if p not in listed]

    def run(self) -> None:
        root = Path(self.build_lib) / ROOT_PACKAGE
        # An in-tree build (pip install ., pipx) reuses build/lib: a module
        # deleted from the checkout since must not ship from there.
        shutil.rmtree(root, ignore_errors=True)
        super().run()
        for path in sorted(root.rglob("*.py")):
            path.write_text(rewrite_imports(path.read_text(), str(path)))
        (root / "__init__.py").write_text(INIT)
        (root / "hooks.py").write_text(HOOKS)
        (root / "__main__.py").write_text(MAIN)
        (root / "wheel_build.py").unlink(missing_ok=True)
        (root / "server" / "wheel_build.py").unlink(missing_ok=True)

    def get_outputs(self, include_bytecode: Any = 1) -> list[str]:
        root = Path(self.build_lib) / ROOT_PACKAGE
        extra = [str(root / n) for n in ("__init__.py", "hooks.py", "__main__.py")]
        return [o for o in super().get_outputs(include_bytecode) if not o.endswith("wheel_build.py")] + extra
