"""``mbt.common.v1.UserDataService``, served alike by every service that holds user rows:
``ExportUserData`` answers the user's rows table by table, ``EraseUserData`` hard-deletes
them (``services.common.persistence.user_data``). Internal: only services call it (the
``mbt.export_user_data`` and ``mbt.erase_user_data`` jobs); ops tokens are refused, since
an export answers everything a user has and erasure changes state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from google.protobuf import struct_pb2

from mbt.common.v1 import user_data_pb2, user_data_pb2_grpc
from services.common.clock import Clock
from services.common.errors import invalid_argument
from services.common.persistence.db import Database
from services.common.persistence.user_data import UserTables
from services.common.wire.conv import to_timestamp


def _struct(row: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(row)
    return message


def _user_id(request) -> str:
    if not request.user_id:
        raise invalid_argument("user_id is required", "user_id")
    return request.user_id


class UserDataServicer(user_data_pb2_grpc.UserDataServiceServicer):
    """``erase(user_id)``, when given, erases instead of ``tables.erase`` (the accounts
    service also records the erasure done)."""

    def __init__(
        self,
        tables: UserTables,
        db: Database,
        clock: Clock,
        erase: Callable[[str], Awaitable[dict[str, int]]] | None = None,
    ) -> None:
        self.tables = tables
        self.db = db
        self.clock = clock
        self._erase = erase

    async def ExportUserData(self, request, context):
        tables = await self.tables.export(self.db, _user_id(request))
        return user_data_pb2.ExportUserDataResponse(
            service=self.tables.service,
            tables=[
                user_data_pb2.UserDataTable(table=name, rows=[_struct(row) for row in rows]) for name, rows in tables
            ],
            exported_at=to_timestamp(self.clock.now()),
        )

    async def EraseUserData(self, request, context):
        user_id = _user_id(request)
        if self._erase is not None:
            deleted = await self._erase(user_id)
        else:
            deleted = await self.tables.erase(self.db, user_id)
        return user_data_pb2.EraseUserDataResponse(service=self.tables.service, deleted_rows=deleted)
