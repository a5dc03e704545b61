"""The trivial backend bench/proxy.py measures against: Centrifugo's proxy JSON, answered at once."""

from __future__ import annotations

import argparse
import asyncio

import tornado.web

CONNECT = b'{"result": {"user": "bench"}}'
EMPTY = b'{"result": {}}'


class Connect(tornado.web.RequestHandler):
    def post(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(CONNECT)


class Publish(tornado.web.RequestHandler):
    def post(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(EMPTY)


class Health(tornado.web.RequestHandler):
    def get(self) -> None:
        self.finish("ok")


async def serve(port: int) -> None:
    app = tornado.web.Application([(r"/connect", Connect), (r"/publish", Publish), (r"/health", Health)])
    app.listen(port, "127.0.0.1")
    await asyncio.Event().wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    asyncio.run(serve(ap.parse_args().port))


if __name__ == "__main__":
    main()
