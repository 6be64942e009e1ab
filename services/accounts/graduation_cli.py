"""``mbt graduation override USER --reason TEXT``: open a user's graduation gate (accounts'
internal ``OverrideGraduation``, as a service; audited with the operator's name) and print
the gate as JSON. Exit code 0 when done, 2 when accounts refuses or cannot be asked."""

from __future__ import annotations

import getpass
import json
import sys

import grpc
from google.protobuf import json_format

from mbt.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from services.common.config import Settings
from services.common.rpc.channels import open_blocking_channel
from services.common.security.auth import ServiceCredentials
from services.common.security.tokens import TokenIssuer, TokenKeys


def add_parser(commands) -> None:
    graduation = commands.add_parser("graduation", help="the paper-first graduation gate").add_subparsers(
        dest="action", required=True
    )
    override = graduation.add_parser("override", help="open a user's graduation gate without the cycles (audited)")
    override.add_argument("user_id", help="the user whose gate to open")
    override.add_argument("--reason", required=True, help="why (kept with the override and in the audit log)")
    override.add_argument("--operator", default=getpass.getuser(), help="who decides (default: your login name)")


def main(args, settings: Settings) -> int:
    credentials = ServiceCredentials(TokenIssuer(TokenKeys.from_settings(settings)), "cli")
    target = settings.service("accounts").target
    channel = open_blocking_channel(target, credentials, keepalive_seconds=settings.grpc_keepalive_seconds)
    try:
        reply = accounts_pb2_grpc.AccountsServiceStub(channel).OverrideGraduation(
            accounts_pb2.OverrideGraduationRequest(user_id=args.user_id, reason=args.reason, operator=args.operator),
            timeout=settings.rpc_timeout_seconds,
        )
    except grpc.RpcError as exc:
        print(f"mbt: cannot override graduation at {target}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 2
    finally:
        channel.close()
    print(json.dumps(json_format.MessageToDict(reply.graduation, preserving_proto_field_name=True)))
    return 0
