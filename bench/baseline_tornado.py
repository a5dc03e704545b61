"""Baseline: a naive Tornado chat server, written like Tornado's chat demo.

Fan-out is the stock ``write_message(dict)`` once per member, so every
delivery re-encodes the JSON, re-frames it and schedules its own write:
what most Tornado WebSocket code does. ``GET /stats`` returns the counters.

    python -m bench.baseline_tornado --port 8102 [--drop-every N]
"""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import tornado.ioloop
import tornado.web
import tornado.websocket

from bench.baseline_core import Core, parse_args


class ChatSocket(tornado.websocket.WebSocketHandler):
    def initialize(self, core: "Core[ChatSocket]") -> None:
        self.core = core

    def check_origin(self, origin: str) -> bool:
        return True

    def open(self, *args: str, **kwargs: str) -> None:
        self.core.opened(self)

    def on_close(self) -> None:
        self.core.closed(self)

    def on_message(self, message: str | bytes) -> None:
        text = message.decode() if isinstance(message, bytes) else message
        for line in text.split("\n"):
            if line:
                reply = self.core.handle(self, json.loads(line))
                if reply is not None:
                    self.write_message(reply)


class StatsHandler(tornado.web.RequestHandler):
    def initialize(self, core: "Core[ChatSocket]") -> None:
        self.core = core

    def get(self) -> None:
        self.write(self.core.stats())


def send_all(members: list[ChatSocket], push: dict[str, Any]) -> None:
    """The chat demo's loop: one write_message per member."""
    for m in members:
        try:
            m.write_message(push)
        except tornado.websocket.WebSocketClosedError:
            pass


async def serve(host: str, port: int, ping_interval: float, drop_every: int) -> None:
    core: Core[ChatSocket] = Core(send_all, ping_interval, drop_every)
    app = tornado.web.Application([
        (r"/connection/websocket", ChatSocket, {"core": core}),
        (r"/stats", StatsHandler, {"core": core}),
    ])
    server = app.listen(port, address=host, backlog=4096)

    def ping() -> None:
        for peer in list(core.subs_of):
            try:
                peer.write_message("{}")
            except tornado.websocket.WebSocketClosedError:
                pass

    pinger = tornado.ioloop.PeriodicCallback(ping, ping_interval * 1000)
    pinger.start()
    stop = asyncio.get_running_loop().create_future()
    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, on_signal)
    print(f"baseline_tornado listening on {host}:{port}", flush=True)
    await stop
    pinger.stop()
    server.stop()


def main() -> None:
    args = parse_args("Naive Tornado chat baseline (write_message per member).")
    asyncio.run(serve(args.host, args.port, args.ping_interval, args.drop_every))


if __name__ == "__main__":
    main()
