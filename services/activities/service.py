"""ActivitiesService servicer: thin — parse, call the use cases, answer."""

from __future__ import annotations

from mbt.activities.v1 import activities_pb2, activities_pb2_grpc
from services.activities import wire
from services.activities.usecases import Activities, ActivityRetention, GoalStreaks, Notifications
from services.common.errors import invalid_argument
from services.common.ids import requested_id
from services.common.rpc.context import require_user_id
from services.common.wire.conv import from_date, from_timestamp, parse_enum
from services.common.wire.retention import user_cutoffs_from_proto


class ActivitiesServicer(activities_pb2_grpc.ActivitiesServiceServicer):
    def __init__(self, activities: Activities, retention: ActivityRetention) -> None:
        self.activities = activities
        self.retention = retention

    async def PurgeExpiredActivities(self, request, context):
        purged, batches = await self.retention.purge(user_cutoffs_from_proto(request.users), request.batch_size)
        return activities_pb2.PurgeExpiredActivitiesResponse(activities_purged=purged, batches=batches)

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


class NotificationsServicer(activities_pb2_grpc.NotificationsServiceServicer):
    def __init__(self, notifications: Notifications) -> None:
        self.notifications = notifications

    async def ListNotifications(self, request, context):
        rows, token = await self.notifications.list_for(
            require_user_id(), request.unread_only, request.page_size, request.page_token
        )
        return activities_pb2.ListNotificationsResponse(
            notifications=[wire.notification_to_proto(r) for r in rows], next_page_token=token
        )

    async def MarkNotificationRead(self, request, context):
        notification_id = requested_id(request.notification_id, "ntf", "notification_id", "notification")
        row = await self.notifications.mark_read(require_user_id(), notification_id)
        return activities_pb2.MarkNotificationReadResponse(notification=wire.notification_to_proto(row))

    async def DeliverNotification(self, request, context):
        fill_id = requested_id(request.fill_id, "fill", "fill_id", "notification of fill")
        row = await self.notifications.deliver(fill_id)
        return activities_pb2.DeliverNotificationResponse(
            notification=wire.notification_to_proto(row),
            webhook=row.webhook_state,
            webhook_attempts=row.webhook_attempts,
        )


class GoalStreakServicer(activities_pb2_grpc.GoalStreakServiceServicer):
    def __init__(self, streaks: GoalStreaks) -> None:
        self.streaks = streaks

    async def EvaluateWeeklyGoal(self, request, context):
        week_end = from_date(request.week_end, "week_end")
        if week_end is None:
            raise invalid_argument("week_end is required", "week_end")
        for name in ("account_id", "user_id"):
            if not getattr(request, name):
                raise invalid_argument(f"{name} is required", name)
        met, streak, nudge = await self.streaks.evaluate(
            week_end,
            request.account_id,
            request.user_id,
            request.investor_profile,
            list(request.open_symbols),
        )
        return activities_pb2.EvaluateWeeklyGoalResponse(met=met, streak=streak, nudge=wire.activity_to_proto(nudge))
