"""Activities' proto <-> row conversions."""

from __future__ import annotations

from google.protobuf import json_format, struct_pb2

from mbt.activities.v1 import activities_pb2
from mbt.common.v1 import audit_pb2, trading_pb2
from services.activities.audit_chain import Break, Link
from services.activities.store import ActivityRow, AuditLogRow
from services.common.wire.conv import amount_str, price_str, qty_str, to_timestamp

TYPES = {activities_pb2.ACTIVITY_TYPE_FILL: "fill", activities_pb2.ACTIVITY_TYPE_DIVIDEND: "dividend",
         activities_pb2.ACTIVITY_TYPE_EXPIRATION: "expiration",
         activities_pb2.ACTIVITY_TYPE_MARGIN_INTEREST: "margin_interest",
         activities_pb2.ACTIVITY_TYPE_ACCOUNT_OPENED: "account_opened"}
TYPE_WIRE = {v: k for k, v in TYPES.items()}
SIDES = {"buy": trading_pb2.ORDER_SIDE_BUY, "sell": trading_pb2.ORDER_SIDE_SELL}
ACTOR_WIRE = {"user": audit_pb2.ACTOR_TYPE_USER, "ops": audit_pb2.ACTOR_TYPE_OPS, "system": audit_pb2.ACTOR_TYPE_SYSTEM}


def activity_to_proto(row: ActivityRow) -> activities_pb2.Activity:
    return activities_pb2.Activity(
        activity_id=row.activity_id, activity_type=TYPE_WIRE[row.activity_type], account_id=row.account_id,
        symbol=row.symbol, order_id=row.order_id, fill_id=row.fill_id, side=SIDES.get(row.side, 0),
        qty=qty_str(row.qty), price=price_str(row.price), net_amount=amount_str(row.net_amount),
        description=row.description, occurred_at=to_timestamp(row.occurred_at),
        created_at=to_timestamp(row.created_at))


def _struct(value: dict | None) -> struct_pb2.Struct | None:
    if value is None:
        return None
    message = struct_pb2.Struct()
    json_format.ParseDict(value, message)
    return message


def audit_to_proto(row: AuditLogRow) -> activities_pb2.AuditEntry:
    record = audit_pb2.AuditRecorded(
        audit_id=row.audit_id, actor_type=ACTOR_WIRE[row.actor_type], actor_id=row.actor_id, action=row.action,
        entity_type=row.entity_type, entity_id=row.entity_id, user_id=row.user_id, before=_struct(row.before),
        after=_struct(row.after), request_id=row.request_id, occurred_at=to_timestamp(row.occurred_at),
        service=row.service)
    return activities_pb2.AuditEntry(audit_id=row.audit_id, record=record, recorded_at=to_timestamp(row.recorded_at))


def link_to_proto(link: Link) -> activities_pb2.AuditChainLink:
    return activities_pb2.AuditChainLink(sequence=link.sequence, audit_id=link.audit_id, row_hash=link.row_hash)


def link_from_proto(message: activities_pb2.AuditChainLink) -> Link:
    return Link(message.sequence, message.audit_id, message.row_hash)


def break_to_proto(broken: Break) -> activities_pb2.AuditChainBreak:
    return activities_pb2.AuditChainBreak(sequence=broken.sequence, audit_id=broken.audit_id, reason=broken.reason)
