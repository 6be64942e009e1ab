"""AuditChainService servicer: thin — parse, call the audit trail, answer."""

from __future__ import annotations

from mbt.activities.v1 import activities_pb2, activities_pb2_grpc
from services.activities import wire
from services.activities.audit_trail import AuditTrail


class AuditChainServicer(activities_pb2_grpc.AuditChainServiceServicer):
    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail

    async def VerifyAuditChain(self, request, context):
        verification = await self.trail.verify(
            request.from_sequence, request.page_size, [wire.link_from_proto(link) for link in request.expected_links]
        )
        response = activities_pb2.VerifyAuditChainResponse(
            verified_rows=verification.verified_rows, next_sequence=verification.next_sequence
        )
        if verification.last is not None:
            response.last.CopyFrom(wire.link_to_proto(verification.last))
        if verification.broken is not None:
            response.first_break.CopyFrom(wire.break_to_proto(verification.broken))
        return response
