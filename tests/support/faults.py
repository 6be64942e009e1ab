"""Faults injected between the steps of a saga: a stand-in for a service's client that
passes calls through to the real service, except when armed.

``FaultyClient(stub)`` wraps a generated gRPC stub; ``arm(method, fault)`` makes the next
call of ``method`` fail in one of these ways:

* ``"drop"``: the request never reaches the service (the service changed nothing);
* ``"lose_reply"``: the service does the work, the caller sees UNAVAILABLE (a reply lost on
  the network, a client deadline that fired just after the work);
* ``"cut_after"``: the service does the work, then the caller stalls until the request is
  cut short (gRPC cancels the handler): nothing after the call runs. ``cut_short(call,
  method)`` cuts it once the work is done, however slowly the machine got there — a client
  deadline alone could fire before the call and cut nothing.
* ``"then"``: the service does the work, then ``arm``'s ``action`` (a coroutine function)
  runs before the caller gets the reply: whatever else happens between two steps of a saga.

Services accept it through their build's ``wrap_…`` seam, e.g.
``start_mesh(settings, builders={"orders": lambda s: build(s, wrap_accounts=faults.wrap)})``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

import grpc

FAULTS = ("drop", "lose_reply", "cut_after", "then")


class InjectedFault(grpc.aio.AioRpcError):
    def __init__(self, what: str) -> None:
        super().__init__(
            grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details=f"injected fault: {what}"
        )


class FaultyClient:
    def __init__(self) -> None:
        self._stub = None
        self._armed: dict[str, deque[tuple[str, Callable[[], Awaitable[object]] | None]]] = {}
        self.injected: list[tuple[str, str]] = []
        self.done: list[tuple[str, str]] = []

    def wrap(self, stub) -> FaultyClient:
        self._stub = stub
        return self

    def arm(
        self, method: str, fault: str, times: int = 1, action: Callable[[], Awaitable[object]] | None = None
    ) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        if (fault == "then") != (action is not None):
            raise ValueError("an action goes with the 'then' fault, and only with it")
        self._armed.setdefault(method, deque()).extend([(fault, action)] * times)

    def disarm(self) -> None:
        self._armed.clear()

    def __getattr__(self, method: str):
        real = getattr(self._stub, method)

        async def call(request, **kwargs):
            pending = self._armed.get(method)
            fault, action = pending.popleft() if pending else (None, None)
            if fault is None:
                return await real(request, **kwargs)
            self.injected.append((method, fault))
            if fault == "drop":
                raise InjectedFault(f"{method} dropped")
            reply = await real(request, **kwargs)
            self.done.append((method, fault))
            if action is not None:
                await action()
                return reply
            if fault == "lose_reply":
                raise InjectedFault(f"{method} reply lost")
            await asyncio.Event().wait()  # until the caller's request is canceled

        return call

    async def cut_short(self, call: grpc.aio.UnaryUnaryCall, method: str, within_s: float = 60.0) -> None:
        """Wait until the armed ``cut_after`` of ``method`` has done its work, then cancel the
        caller's ``call`` (the server cancels the handler, as for an expired deadline).

        Raises ``AssertionError`` when the work is not done within ``within_s`` seconds."""
        give_up = time.monotonic() + within_s
        while (method, "cut_after") not in self.done:
            assert time.monotonic() < give_up, f"{method} was not called within {within_s} s"
            await asyncio.sleep(0.01)
        call.cancel()
