"""Serving the gateway over HTTP with uvicorn, with what a server facing untrusted clients
needs and uvicorn does not do alone:

* read deadlines: a request's line and headers must arrive within
  ``MBT_GATEWAY_HEADER_TIMEOUT_SECONDS`` (from connecting, or from the first byte of the next
  request on a kept-alive connection), its body within ``MBT_GATEWAY_BODY_TIMEOUT_SECONDS``
  of its headers; otherwise the client gets 408 (when nothing was answered yet) and the
  connection is closed. uvicorn only times out idle kept-alive connections, so a client
  trickling a header or a body would hold its connection forever.
* a cap on connections and requests in flight (``MBT_GATEWAY_MAX_CONNECTIONS``: uvicorn's
  ``limit_concurrency``, 503 beyond it), so slow clients cannot exhaust the process;
* ``X-Forwarded-For`` believed only from ``MBT_TRUSTED_PROXIES`` (the per-client budgets key
  on the client's address).
"""

from __future__ import annotations

import asyncio
import json

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from services.common.config import Settings
from services.common.rpc import context

# Keep-alive longer than the clients' and proxies' idle timeouts, so the gateway is not the
# side that closes a connection a client is about to reuse.
KEEP_ALIVE_SECONDS = 75


def _timeout_response() -> bytes:
    body = json.dumps(
        {
            "error": {
                "code": "request_timeout",
                "message": "the request was not received in time",
                "request_id": context.new_request_id(),
            }
        }
    ).encode()
    head = (
        f"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode()
    return head + body


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on reading each request's head and body."""

    header_seconds: float = 10.0
    body_seconds: float = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_body = False
        self._arm(self.header_seconds, reading_body=False)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None:  # the first byte of the next request on a kept-alive connection
            self._arm(self.header_seconds, reading_body=False)
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _follow(self) -> None:
        """Move the deadline along with what the client is sending."""
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            if not self._reading_body:
                self._arm(self.body_seconds, reading_body=True)
        elif state is not h11.IDLE:  # the request is in (or the connection is over): nothing to wait for
            self._disarm()

    def _arm(self, seconds: float, *, reading_body: bool) -> None:
        self._disarm()
        self._reading_body = reading_body
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle if self._reading_body else None  # while reading a head, no request has begun
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # what the app sends from now on goes nowhere,
            cycle.message_event.set()  # and its read of the body ends (http.disconnect)
        if cycle is None or not cycle.response_started:
            self.transport.write(_timeout_response())
        self.transport.close()


def config(app, settings: Settings, *, port: int | None = None) -> uvicorn.Config:
    """uvicorn's configuration of the gateway (``port`` 0 in tests: any free port)."""
    protocol = type(
        "GatewayProtocol",
        (DeadlineProtocol,),
        {
            "header_seconds": settings.gateway_header_timeout_seconds,
            "body_seconds": settings.gateway_body_timeout_seconds,
        },
    )
    return uvicorn.Config(
        app,
        host=settings.bind_host,
        port=settings.gateway_port if port is None else port,
        http=protocol,
        limit_concurrency=settings.gateway_max_connections,
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(settings.grace_seconds),
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
