"""ActivitiesService servicer: thin — parse, call the use cases, answer."""

from __future__ import annotations

from mbt.activities.v1 import activities_pb2, activities_pb2_grpc
from services.activities import wire
from services.activities.usecases import Activities
from services.common.ids import requested_id
from services.common.rpc.context import require_user_id
from services.common.wire.conv import from_timestamp, parse_enum


class ActivitiesServicer(activities_pb2_grpc.ActivitiesServiceServicer):
    def __init__(self, activities: Activities) -> None:
        self.activities = activities

    async def ListActivities(self, request, context):
        activity_type = parse_enum(wire.TYPES, request.activity_type, "type", required=False)
        rows, token = await self.activities.list_for(
            require_user_id(),
            activity_type,
            from_timestamp(request.from_time),
            from_timestamp(request.to_time),
            request.page_size,
            request.page_token,
        )
        return activities_pb2.ListActivitiesResponse(
            activities=[wire.activity_to_proto(r) for r in rows], next_page_token=token
        )

    async def GetActivity(self, request, context):
        activity_id = requested_id(request.activity_id, "act", "activity_id", "activity")
        row = await self.activities.get(require_user_id(), activity_id)
        return activities_pb2.GetActivityResponse(activity=wire.activity_to_proto(row))

    async def ListAuditLog(self, request, context):
        rows, token = await self.activities.audit_log(
            request.user_id, request.entity_id, request.page_size, request.page_token
        )
        return activities_pb2.ListAuditLogResponse(
            entries=[wire.audit_to_proto(r) for r in rows], next_page_token=token
        )
