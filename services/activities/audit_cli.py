"""``mbt audit verify [--from N]``: walk the audit log's hash chain (activities'
``VerifyAuditChain``, as a service) and name the first broken link. Exit code 0 when the
chain holds, 1 when it is broken, 2 when activities cannot be asked."""

from __future__ import annotations

import json
import sys

import grpc

from mbt.activities.v1 import activities_pb2_grpc
from services.activities.tasks import walk_audit_chain
from services.common.config import Settings
from services.common.rpc.channels import open_blocking_channel
from services.common.security.auth import ServiceCredentials
from services.common.security.tokens import TokenIssuer, TokenKeys


def add_parser(commands) -> None:
    audit = commands.add_parser("audit", help="the audit log").add_subparsers(dest="action", required=True)
    verify = audit.add_parser("verify", help="verify the audit log's hash chain and name the first broken link")
    verify.add_argument(
        "--from",
        dest="from_sequence",
        type=int,
        default=1,
        help="chain position to start at (default 1, the first row); the row before it is trusted",
    )


def main(args, settings: Settings) -> int:
    credentials = ServiceCredentials(TokenIssuer(TokenKeys.from_settings(settings)), "cli")
    channel = open_blocking_channel(
        settings.service("activities").target, credentials, keepalive_seconds=settings.grpc_keepalive_seconds
    )
    try:
        walk = walk_audit_chain(
            activities_pb2_grpc.AuditChainServiceStub(channel),
            from_sequence=args.from_sequence,
            timeout=settings.rpc_timeout_seconds,
            on_page=lambda verified: print(f"mbt: {verified} rows hold so far", file=sys.stderr),
        )
    except grpc.RpcError as exc:
        print(
            f"mbt: cannot verify the audit chain at {settings.service('activities').target}: "
            f"{exc.code().name}: {exc.details()}",
            file=sys.stderr,
        )
        return 2
    finally:
        channel.close()
    head = walk.head
    print(
        json.dumps(
            {
                "verified_rows": walk.verified_rows,
                "head": {"sequence": head.sequence, "audit_id": head.audit_id, "row_hash": head.row_hash}
                if head
                else None,
                "broken": {
                    "sequence": walk.broken.sequence,
                    "audit_id": walk.broken.audit_id,
                    "reason": walk.broken.reason,
                }
                if walk.broken
                else None,
            }
        )
    )
    if walk.broken is not None:
        print(f"mbt: the audit chain is broken at row {walk.broken.sequence}: {walk.broken.reason}", file=sys.stderr)
        return 1
    return 0
