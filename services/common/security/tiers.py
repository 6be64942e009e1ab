"""A user's tier ("free", "pro", "pro_plus") comes from its owner, the accounts service.

Tokens carry the tier so every hop can rate-limit without asking again; it is read when a
token is issued (sign-in, refresh, the CLI). A user accounts does not know (yet) is
"free". At sign-in, when accounts cannot say (unreachable, failing), the user gets the
smallest budget, "free" too: failing towards fewer requests is the safe side. The CLI
asks instead (``ask``) and refuses to guess.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc

from mbt.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from services.common.observability.logs import fields
from services.common.rpc.channels import MetadataSource

log = logging.getLogger(__name__)

FALLBACK_TIER = "free"
_TIER_NAMES = {accounts_pb2.TIER_FREE: "free", accounts_pb2.TIER_PRO: "pro", accounts_pb2.TIER_PRO_PLUS: "pro_plus"}


class TierLookup:
    """``channel`` is called at the first lookup: a grpc.aio channel belongs to the event
    loop it is opened in, which is the server's, not the builder's."""

    def __init__(
        self, channel: Callable[[], grpc.aio.Channel], credentials: MetadataSource, timeout_seconds: float
    ) -> None:
        self.channel = channel
        self.credentials = credentials
        self.timeout_seconds = timeout_seconds

    async def ask(self, user_id: str) -> str:
        """The user's tier; "free" for a user accounts does not know (``NOT_FOUND``, or
        ``UNIMPLEMENTED`` before accounts keeps users). Raises ``grpc.aio.AioRpcError``
        when accounts cannot answer (unreachable, refusing the caller, failing)."""
        stub = accounts_pb2_grpc.AccountsServiceStub(self.channel())
        try:
            reply = await stub.GetUser(
                accounts_pb2.GetUserRequest(user_id=user_id),
                metadata=list(self.credentials()),
                timeout=self.timeout_seconds,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED):
                return FALLBACK_TIER
            raise
        return _TIER_NAMES.get(reply.user.tier, FALLBACK_TIER)

    async def tier(self, user_id: str) -> str:
        """The user's tier, "free" whenever accounts cannot say."""
        try:
            return await self.ask(user_id)
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "tier unavailable; using the fallback tier",
                extra=fields(user_id=user_id, code=exc.code().name, tier=FALLBACK_TIER),
            )
            return FALLBACK_TIER
