"""Running a node: listen, handle signals, and shut down gracefully.

SIGTERM/SIGINT: stop accepting, tell every client to reconnect later (3001)
spread over ``shutdown_drain_seconds`` so they do not all return at once,
let in-flight commands (publishes, history writes) finish, close backends,
exit 0. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
from typing import Sequence

from channels import errors
from handlers.front_door import FrontDoor
from server.app import Squall, build
from server.gc_policy import GcPolicy
from server.logs import START_LOGGER
from server.settings import Settings

log = logging.getLogger("squall.server")
INFLIGHT_WAIT = 10.0


async def shutdown(squall: Squall, server: FrontDoor | None) -> None:
    """Drain this node; see the module docstring for the order of steps."""
    # From here new sockets get 503 and connect commands on sockets already
    # open get 3001, so nobody slips in behind the disconnect batches.
    squall.ctx.limiter.stop_admitting()
    if server is not None:
        server.stop()
    hub = squall.ctx.hub
    clients = hub.clients()
    drain = squall.settings.shutdown_drain_seconds
    log.info("shutting down: disconnecting %d clients over %.1fs", len(clients), drain)
    n = len(clients)
    batches = max(1, min(20, n))
    for i in range(batches):  # even slices: no batch left empty at the end
        for c in clients[i * n // batches : (i + 1) * n // batches]:
            c.disconnect(errors.SHUTDOWN)
        if i < batches - 1 and drain > 0:
            await asyncio.sleep(drain / batches)
    for c in hub.clients():  # connected while the batches went out
        c.disconnect(errors.SHUTDOWN)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + INFLIGHT_WAIT
    while hub.inflight and loop.time() < deadline:
        await asyncio.sleep(0.02)
    if server is not None:
        try:
            await asyncio.wait_for(server.close_all_connections(), 5.0)
        except asyncio.TimeoutError:
            log.warning("some connections did not close in time")
    await squall.close()
    log.info("shutdown complete")


def front_door(squall: Squall, lean_api: bool = True) -> FrontDoor:
    """The HTTP server, with the door that opens client WebSockets and serves
    the server API itself (needs a running loop); ``lean_api`` False leaves
    the API to Tornado (tests compare the two)."""
    settings = squall.settings
    return FrontDoor(
        squall.app, xheaders=True, max_body_size=max(settings.max_message_size, 1 << 20),
        # permessage-deflate is Tornado's: then every connection goes to Tornado
        ctx=squall.ctx, lean=not settings.websocket_compression, api=squall.api if lean_api else None,
    )


async def serve(settings: Settings, sockets: Sequence[socket.socket] | None = None) -> int:
    squall = build(settings)
    # Start-up objects (modules, settings, handlers) live as long as the
    # process: keep them out of every later collection, shortening GC pauses.
    # Done before start(), whose GC monitor would count this one collection.
    gc.collect()
    gc.freeze()
    gc_policy = GcPolicy(settings.gc_full_collect_interval)
    await squall.start()
    gc_policy.start()
    server = front_door(squall)
    if sockets:
        server.add_sockets(sockets)
    else:
        try:
            server.listen(settings.port, settings.host, backlog=settings.listen_backlog)
        except OSError as e:  # the port is taken, or the address is not this host's
            log.error("cannot listen on %s:%d: %s", settings.host, settings.port, e.strerror or e)
            gc_policy.stop()
            await squall.close()
            return 1
    logging.getLogger(START_LOGGER).info(
        "squall listening on http://%s:%d/ (engine=%s, history=%s, node=%s)",
        settings.host, settings.port, settings.engine, settings.history, squall.ctx.hub.node_id[:8],
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signame: str) -> None:
        if stop.is_set():
            log.warning("second %s: exiting at once", signame)
            os._exit(1)
        log.info("%s received", signame)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    await stop.wait()
    gc_policy.stop()
    await shutdown(squall, server)
    return 0


def run(settings: Settings) -> int:
    """Serve in this process, or fork ``processes`` workers sharing the port.

    Each worker binds its own socket with SO_REUSEPORT, so the kernel spreads
    new connections evenly over the workers (one shared socket would leave
    that to whichever worker wakes first).
    """
    if settings.processes == 1:
        return asyncio.run(serve(settings))
    from tornado.netutil import bind_sockets

    from server.workers import supervise

    # Fail here, clearly, when the port is taken; then let the workers bind.
    try:
        for s in bind_sockets(settings.port, settings.host, reuse_port=True):
            s.close()
    except OSError as e:
        log.error("cannot listen on %s:%d: %s", settings.host, settings.port, e.strerror or e)
        return 1
    n = settings.processes or os.cpu_count() or 1
    logging.getLogger(START_LOGGER).info("starting %d worker processes on %s:%d", n, settings.host, settings.port)

    def worker(index: int) -> int:
        sockets = bind_sockets(settings.port, settings.host, backlog=settings.listen_backlog, reuse_port=True)
        return asyncio.run(serve(settings, sockets))

    return supervise(n, worker)
