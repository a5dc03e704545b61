"""Squall's command line: ``squall [serve|gentoken|checkconfig|genconfig|...]``.

Installed it is the ``squall`` command; from the checkout, ``python run.py``.

Settings precedence: flags > SQUALL_* environment > TOML file (--config) >
defaults. With no file, the embedded demo configuration is used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any, Callable

from server.settings import (
    PACKAGE_ROOT,
    ConfigError,
    Settings,
    config_warnings,
    describe,
    env_warnings,
    hmac_key_warning,
    load,
    HS256_MIN_KEY_BYTES,
)

# flag name -> settings key, for the common settings
_FLAGS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "--host": ("host", str, "address to listen on"),
    "--port": ("port", int, "TCP port"),
    "--processes": ("processes", int, "worker processes sharing the port (0 = one per core; needs --engine redis)"),
    "--engine": ("engine", str, "memory or redis"),
    "--history": ("history", str, "history store: memory or mongo"),
    "--mongo-url": ("mongo_url", str, "MongoDB connection string"),
    "--log-level": ("log_level", str, "debug, info, warning, error"),
    "--log-format": ("log_format", str, "text or json"),
    "--api-key": ("api_key", str, "server API key"),
    "--node-name": ("node_name", str, "name of this node"),
    "--hooks": ("hooks", str, "in-process hooks 'package.module:factory' (the current directory is importable)"),
}


def _quiet_pyjwt_key_warning() -> None:
    """PyJWT warns about short HMAC keys with a site-packages path; Squall says it in one line itself."""
    import warnings

    try:
        from jwt.warnings import InsecureKeyLengthWarning
    except ImportError:  # PyJWT before 2.10 does not warn
        return
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)


def version() -> str:
    """The installed distribution's version; from the checkout, pyproject.toml's."""
    if PACKAGE_ROOT:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version

        try:
            return dist_version("squall")
        except PackageNotFoundError:
            return "0+unknown"
    import tomllib
    from pathlib import Path

    with open(Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def _shown(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ", ".join(str(v) for v in value) or "none"
    return "none" if value == "" else str(value)


def _add_settings_flags(p: argparse.ArgumentParser, common: bool = True) -> None:
    """--config and --set; with ``common``, the flags of the common settings, each with its default."""
    p.add_argument(
        "--config", "-c", help="TOML configuration file (default: the embedded demo config: anonymous chat, api_key 'demo')"
    )
    if common:
        defaults = {name: default for name, default, _ in describe()}
        for flag, (key, typ, text) in _FLAGS.items():
            p.add_argument(flag, dest=key, type=typ, default=None, help=f"{text} (default: {_shown(defaults[key])})")
        p.add_argument(
            "--redis-url", dest="redis_urls", action="append", default=None,
            help=f"Redis URL, repeat to shard over several; needs --engine redis (default: {_shown(defaults['redis_urls'])})",
        )
    p.add_argument(
        "--set", "-o", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="any other setting (see genconfig)",
    )


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(key or "--set", "expected KEY=VALUE")
        overrides[key.strip()] = value
    for key, _, _ in _FLAGS.values():
        value = getattr(args, key, None)
        if value is not None:
            overrides[key] = value
    if getattr(args, "redis_urls", None):
        overrides["redis_urls"] = tuple(args.redis_urls)
    for line in env_warnings():
        print(f"{getattr(args, 'prog', 'squall')}: warning: {line}", file=sys.stderr)
    return load(args.config, overrides=overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    from server.lifecycle import run
    from server.logs import setup_logging

    settings = _settings(args)
    check_hooks(settings.hooks)
    setup_logging(settings.log_level, settings.log_format)
    for line in config_warnings(settings):
        logging.getLogger("squall.config").warning("%s", line)
    return run(settings)


def check_hooks(spec: str) -> None:
    """Import the hooks module now, so a wrong name is one line, not a worker's trace.

    The current directory goes on sys.path (last, so a directory of the
    user's named like one of Squall's checkout packages cannot shadow it):
    ``squall serve --hooks mypkg.hooks:make`` run beside ``mypkg/`` finds it.
    """
    if not spec:
        return
    import importlib
    import os

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError("hooks", f"expected 'package.module:factory', got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(
            "hooks", f"cannot import {module_name!r} ({e}): run from the directory that holds it, "
            "set PYTHONPATH, or pip install your package"
        ) from None
    if not callable(getattr(module, attr, None)):
        raise ConfigError("hooks", f"{module_name!r} has no factory {attr!r}")


def cmd_gentoken(args: argparse.Namespace) -> int:
    from handlers.auth import make_token

    settings = _settings(args)
    algorithm = args.algorithm
    if algorithm == "HS256":
        key = args.secret or settings.token_hmac_secret_key
        if not key:
            raise ConfigError("token_hmac_secret_key", "needed to sign HS256 tokens (or pass --secret)")
        if len(key.encode()) < HS256_MIN_KEY_BYTES:
            name = "--secret" if args.secret else "token_hmac_secret_key"
            print(f"{args.prog}: warning: {hmac_key_warning(name, key)}", file=sys.stderr)
    else:
        if not args.private_key:
            raise ConfigError("--private-key", f"needed to sign {algorithm} tokens")
        try:
            with open(args.private_key) as f:
                key = f.read()
        except OSError as e:
            raise ConfigError("--private-key", str(e)) from None
    info = _json_arg("--info", args.info)
    meta = _json_arg("--meta", args.meta)
    channels = [c for c in (args.channels or "").split(",") if c]
    subs: dict[str, Any] = {c: {} for c in (args.subs or "").split(",") if c}
    try:
        token = make_token(
            key, args.user, ttl=args.ttl, info=info, channel=args.channel or "", channels=channels,
            subs=subs, meta=meta, algorithm=algorithm,
        )
    except (ValueError, TypeError) as e:  # e.g. a key that is not a PEM private key
        raise ConfigError("--private-key" if algorithm != "HS256" else "--secret", str(e)) from None
    print(token)
    return 0


def _json_arg(flag: str, value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError as e:
        raise ConfigError(flag, f"not valid JSON: {e}") from None


async def _check_connectivity(settings: Settings) -> list[str]:
    from server.app import build

    squall = build(settings)
    problems: list[str] = []
    try:
        await asyncio.wait_for(squall.start(), 10)
        await asyncio.sleep(0.2)
        if not squall.ctx.hub.broker.healthy():
            problems.append(f"engine: broker not reachable ({settings.engine})")
        if not squall.backends.history.healthy():
            problems.append(f"history: store not reachable ({settings.history})")
    except Exception as e:  # report any start-up failure as a problem, not a trace
        problems.append(f"start-up failed: {e}")
    finally:
        try:
            await asyncio.wait_for(squall.close(), 10)
        except Exception:
            pass
    return problems


def cmd_checkconfig(args: argparse.Namespace) -> int:
    settings = _settings(args)
    check_hooks(settings.hooks)
    for line in config_warnings(settings):
        print(f"checkconfig: warning: {line}", file=sys.stderr)
    if not args.offline:
        problems = asyncio.run(_check_connectivity(settings))
        if problems:
            for p in problems:
                print(f"checkconfig: {p}", file=sys.stderr)
            return 1
    print(f"configuration ok (engine={settings.engine}, history={settings.history}, namespaces={len(settings.namespaces)})")
    return 0


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table (proxy_rpc_endpoints, proxy_static_http_headers)
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))


def cmd_genconfig(args: argparse.Namespace) -> int:
    lines = ["# Squall configuration. Every setting with its default; uncomment to change.", ""]
    for name, default, doc in describe():
        if name in ("channel", "namespaces"):
            continue
        lines.append(f"# {doc}")
        lines.append(f"# {name} = {_toml_value(default)}")
        lines.append("")
    lines += [
        "# Options of channels without a namespace (clients can't reach them by default).",
        "[channel]",
        "",
        "# A namespace: channels named 'chat:<room>'.",
        "[[namespaces]]",
        'name = "chat"',
        "presence = true",
        "join_leave = true",
        "history_size = 100",
        'history_ttl = "24h"',
        '# history_meta_ttl = "720h"  # how long a quiet channel keeps its epoch and offset (0: forever)',
        "force_recovery = true",
        "allow_subscribe_for_client = true",
        "allow_publish_for_subscriber = true",
        "allow_presence_for_subscriber = true",
        "allow_history_for_subscriber = true",
        "",
    ]
    text = "\n".join(lines)
    if args.output and args.output != "-":
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def build_parser(prog: str = "squall") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Squall real-time messaging server")
    parser.add_argument("--version", action="version", version=f"squall {version()}")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("serve", help="run the server (the default)")
    _add_settings_flags(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("gentoken", help="print a connection or subscription JWT")
    _add_settings_flags(p, common=False)  # only the file and --set: the key may come from them
    p.add_argument("--user", required=True, help="the sub claim")
    p.add_argument("--ttl", type=int, default=None, help="seconds until exp (default: no expiry)")
    p.add_argument("--channel", help="make a subscription token for this channel")
    p.add_argument("--channels", help="comma-separated server-side channels (connection token)")
    p.add_argument("--info", help="JSON for the info claim")
    p.add_argument("--secret", help="HS256 secret (default: token_hmac_secret_key)")
    p.add_argument("--algorithm", choices=("HS256", "RS256", "ES256"), default="HS256")
    p.add_argument("--private-key", help="PEM private key file for RS256/ES256")
    p.add_argument("--meta", help="JSON for the meta claim (seen by the server only)")
    p.add_argument("--subs", help="comma-separated channels for the subs claim (server-side subscriptions)")
    p.set_defaults(func=cmd_gentoken)

    p = sub.add_parser("checkconfig", help="validate the configuration and check backends are reachable")
    _add_settings_flags(p)
    p.add_argument("--offline", action="store_true", help="only validate, do not connect to backends")
    p.set_defaults(func=cmd_checkconfig)

    p = sub.add_parser("genconfig", help="write a commented starter configuration")
    p.add_argument("--output", "-O", default="-", help="file to write (default: stdout)")
    p.set_defaults(func=cmd_genconfig)

    from loadtest import cli as loadtest_cli

    p = sub.add_parser("loadtest", help="drive many connections against a server and report")
    loadtest_cli.add_arguments(p)
    p.set_defaults(func=loadtest_cli.run)

    from server import demo_feed

    p = sub.add_parser("demo-feed", help="publish synthetic metrics for the /dashboard page through the server API")
    demo_feed.add_arguments(p)
    p.set_defaults(func=demo_feed.run)
    return parser


def main(argv: list[str] | None = None, prog: str = "squall") -> int:
    parser = build_parser(prog)
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"serve", "gentoken", "checkconfig", "genconfig", "loadtest", "demo-feed"}
    if not argv or (argv[0] not in commands and argv[0] not in ("-h", "--help", "--version")):
        argv = ["serve", *argv]  # `squall [flags]` serves
    args = parser.parse_args(argv)
    args.prog = prog
    _quiet_pyjwt_key_warning()
    try:
        return int(args.func(args))
    except ConfigError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
