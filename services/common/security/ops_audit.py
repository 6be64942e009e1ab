"""Ops tokens may read any user's data, and every such read leaves a trace.

A service with an outbox writes an ``AuditRecorded`` (actor type ops, action ``read``) in
its own transaction before serving the read, so it reaches activities' ``audit_log`` like
every other audit message; a service without a database (the matcher) writes the same
facts to its ``mbt.audit`` log. A read whose audit cannot be written is not served.
"""

from __future__ import annotations

import logging
from typing import Protocol

from services.common.messaging.outbox import Outbox
from services.common.observability.logs import fields
from services.common.persistence.db import Database
from services.common.persistence.uow import unit_of_work
from services.common.rpc.context import Identity

log = logging.getLogger("mbt.audit")


class OpsReadAudit(Protocol):
    async def record(self, caller: Identity, method: str, user_id: str) -> None: ...


class LoggedOpsReads:
    async def record(self, caller: Identity, method: str, user_id: str) -> None:
        log.info("ops read", extra=fields(actor=caller.subject, user_id=user_id, method=method))


class OutboxOpsReads(LoggedOpsReads):
    def __init__(self, db: Database, outbox: Outbox) -> None:
        self.db = db
        self.outbox = outbox

    async def record(self, caller: Identity, method: str, user_id: str) -> None:
        rpc = method.rsplit(".", 1)[-1]  # "AccountsService/GetAccount"
        async with unit_of_work(self.db, self.outbox) as uow:
            await uow.audit(
                action="read", entity_type="rpc", entity_id=rpc, user_id=user_id, before=None, after={"method": method}
            )
        await super().record(caller, method, user_id)
