"""The wheel's import rewrite (server/wheel_build.py), source in, source out."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.wheel_build import UnsupportedImport, rewrite_imports


def test_prefixes_own_packages_only() -> None:
    """from-imports of server/handlers/channels/loadtest gain `squall.`; others and look-alikes stay."""
    src = (
        "from __future__ import annotations\n"
        "from channels.hub import Hub\n"
        "from handlers import hooks\n"
        "    from server.app import build  # lazy\n"
        "from channels_extra.x import y\n"
        "from tornado.web import Application\n"
        "import loadtest.cli as ltc\n"
        "s = 'from channels.hub import Hub'\n"
    )
    out = rewrite_imports(src.replace("    from server", "if x:\n    from server"))
    assert "from squall.channels.hub import Hub\n" in out
    assert "from squall.handlers import hooks\n" in out
    assert "    from squall.server.app import build  # lazy\n" in out
    assert "from channels_extra.x import y\n" in out and "from tornado.web import" in out
    assert "import squall.loadtest.cli as ltc\n" in out
    assert "s = 'from channels.hub import Hub'\n" in out  # strings are not imports


def test_multiline_import_and_relative_import() -> None:
    """A parenthesised import is rewritten on its first line; a relative import is left alone."""
    out = rewrite_imports("from channels.errors import (\n    Disconnect,\n)\nfrom .x import y\n")
    assert out == "from squall.channels.errors import (\n    Disconnect,\n)\nfrom .x import y\n"


def test_bare_import_of_own_package_fails_the_build() -> None:
    """`import channels.x` would bind the bare name: the build refuses it rather than ship it."""
    with pytest.raises(UnsupportedImport, match="import channels.hub"):
        rewrite_imports("import channels.hub\n", "m.py")


def test_subpackages_of_mapped_directories_are_found(tmp_path: Path) -> None:
    """A package directory someone adds below handlers/ ships as squall.handlers.<name>, caches excluded."""
    from server.wheel_build import subpackages

    for d in ("handlers", "handlers/proto", "handlers/proto/deep", "handlers/__pycache__/x", "handlers/data"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    for d in ("handlers", "handlers/proto", "handlers/proto/deep", "handlers/__pycache__/x"):
        (tmp_path / d / "__init__.py").write_text("")
    found = subpackages({"squall.handlers": "handlers", "squall.static": "static", "other": "x"}, tmp_path)
    assert found == ["squall.handlers.proto", "squall.handlers.proto.deep"]
