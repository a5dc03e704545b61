"""The HTTP proxy client: POSTs Centrifugo's proxy JSON to the backend, bounded.

Built once by server/app.py from the ``proxy_*`` settings (docs/PROXY.md)
and reached by the command functions as ``ctx.proxy``. Bodies are
:mod:`handlers.proxy_schema`'s. The HTTP calls go through one aiohttp
session (keep-alive connections: a connection per call would measure TCP
set-up instead of the backend).

Failure is answered, never waited on: a backend that is down, slower than
the event's timeout, answers a status other than 200 (unless
``proxy_http_status_code_transforms`` maps it) or something that is not
Centrifugo's JSON gets the client Centrifugo's internal error (100,
temporary: the SDK retries with backoff). At most ``proxy_max_inflight``
calls are outstanding; past that a call fails at once with 100, so a
reconnect storm cannot queue unbounded work on the backend (centrifugo #982).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from channels import errors
from channels.errors import Disconnect, SquallError
from handlers.options import PROXY_EVENTS, Endpoint, ProxyConfig
from handlers.proxy_schema import ENCODING_BINARY, ENCODING_JSON, BackendError, ClientFields, MalformedResponse, parse_response

if TYPE_CHECKING:
    import aiohttp

    from handlers.session import ClientSession

log = logging.getLogger("squall.proxy")

EVENTS = PROXY_EVENTS
MAX_RESPONSE_BYTES = 4 << 20


def kept_headers(proxy: Proxy | None, headers: Mapping[str, str]) -> Mapping[str, str]:
    """What a transport keeps of its HTTP request's headers: the allow-listed ones only."""
    if proxy is None or not proxy.config.http_headers:
        return NO_HEADERS
    allowed = proxy.config.http_headers
    return {k: v for k, v in headers.items() if k.lower() in allowed}


NO_HEADERS: Mapping[str, str] = {}


DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(slots=True)
class ProxyStats:
    """Plain counters (metrics read them)."""

    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVENTS, 0))
    failures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVENTS, 0))
    refused_inflight: int = 0
    # per event: calls answered within each of DURATION_BUCKETS (not cumulative), and their seconds' sum
    durations: dict[str, list[int]] = field(default_factory=lambda: {e: [0] * (len(DURATION_BUCKETS) + 1) for e in EVENTS})
    duration_sum: dict[str, float] = field(default_factory=lambda: dict.fromkeys(EVENTS, 0.0))

    def observe(self, event: str, seconds: float) -> None:
        i = 0
        while i < len(DURATION_BUCKETS) and seconds > DURATION_BUCKETS[i]:
            i += 1
        self.durations[event][i] += 1
        self.duration_sum[event] += seconds


class Proxy:
    """One node's proxy client; ``close`` at shutdown."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.stats = ProxyStats()
        self.inflight = 0
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=self.config.max_inflight, limit_per_host=self.config.max_inflight)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def fields(self, s: ClientSession) -> ClientFields:
        return ClientFields(
            client=s.client_id,
            transport=s.transport,
            protocol=s.wire.codec.name,
            encoding=ENCODING_BINARY if self.config.binary_encoding else ENCODING_JSON,
        )

    def headers(self, s: ClientSession) -> dict[str, str]:
        """Static headers, then the client's emulated ones (their own allow-list), then
        its HTTP request's (which win: the edge controls them, the client does not)."""
        out = dict(self.config.static_headers)
        allowed = self.config.emulated_headers
        for k, v in s.emulated_headers.items():
            if k.lower() in allowed:
                out[k] = v
        out.update(s.request_headers)
        out["Content-Type"] = "application/json"
        return out

    async def call(self, event: str, endpoint: Endpoint, s: ClientSession, body: bytes) -> dict[str, Any] | None:
        """POST ``body``; the response's ``result`` (None when empty).

        Raises the backend's error or disconnect, or InternalError (100) when
        the backend cannot answer in time, answers badly, or too many calls
        are outstanding."""
        self.stats.calls[event] += 1
        if self.inflight >= self.config.max_inflight:
            self.stats.refused_inflight += 1
            self.stats.failures[event] += 1
            log.warning("proxy %s refused: %d calls outstanding", event, self.inflight)
            raise errors.InternalError()
        self.inflight += 1
        started = time.perf_counter()
        try:
            status, raw = await asyncio.wait_for(self._post(endpoint.url, self.headers(s), body), endpoint.timeout)
            if status != 200:
                self._transformed(status)
                raise _Failure(f"HTTP status {status}")
            return parse_response(raw)
        except (SquallError, Disconnect):
            raise
        except (_Failure, MalformedResponse) as e:
            raise self.failed(event, endpoint, s, str(e)) from None
        except asyncio.TimeoutError:
            raise self.failed(event, endpoint, s, f"no answer in {endpoint.timeout:g}s") from None
        except Exception as e:  # aiohttp.ClientError, OSError: the backend is unreachable
            raise self.failed(event, endpoint, s, f"{type(e).__name__}: {e}") from None
        finally:
            self.inflight -= 1
            self.stats.observe(event, time.perf_counter() - started)

    async def _post(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        async with self._client().post(url, data=body, headers=headers) as resp:
            raw = await resp.content.read(MAX_RESPONSE_BYTES + 1)
            if len(raw) > MAX_RESPONSE_BYTES:
                raise _Failure("response too large")
            return resp.status, raw

    def _transformed(self, status: int) -> None:
        for t in self.config.status_transforms:
            if t.status_code == status:
                if t.error is not None:
                    raise BackendError(*t.error)
                if t.disconnect is not None:
                    raise Disconnect(t.disconnect, t.disconnect.reason or None)

    def failed(self, event: str, endpoint: Endpoint, s: ClientSession, why: str) -> SquallError:
        """Count and log a failed call; the error the client gets (100)."""
        self.stats.failures[event] += 1
        log.error("proxy %s to %s failed for client=%s: %s", event, endpoint.url, s.client_id, why)
        return errors.InternalError()


class _Failure(Exception):
    """The backend answered, but not with a usable 200."""
