"""``mbt``: operator commands.

    mbt token user alice [--scope read] [--tier pro] [--ttl 3600]   a user token for native gRPC / REST
    mbt token ops carol [--ttl 900]                                  an ops (read-only) token
    mbt token service console [--ttl 600]                            a service token, for platform tooling
    mbt keys new                                                     a new signing key entry
    mbt backtest grid --from 2012-06-21 --to 2012-06-22              a backtest in this process
    mbt jobs run mbt.verify_audit_chain [--date D | --key K]         run a job for one key, print what it did
    mbt jobs list [--job NAME]                                       the latest job records
    mbt audit verify [--from N]                                      verify the audit log's hash chain
    mbt graduation override alice --reason "..."                     open a user's graduation gate (audited)

Tokens are printed alone on stdout (``TOKEN=$(mbt token user alice)``) and signed with the
configured keys (``MBT_USER_TOKEN_KEYS``, or ``MBT_SERVICE_TOKEN_KEYS`` for a service token,
which only whoever holds the platform's service key can make; the development keys when
unset, outside production). They belong to no session, so nothing can revoke them before
they expire: lifetimes are capped. A user token's tier is asked of accounts
(``MBT_ACCOUNTS_TARGET``) unless ``--tier`` gives it; when accounts cannot answer, no token
is issued.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import grpc

from services.accounts import graduation_cli
from services.activities import audit_cli
from services.common.config import ConfigError, Settings
from services.common.rpc.channels import open_channel
from services.common.security.auth import USER_ID, ServiceCredentials
from services.common.security.tiers import TierLookup
from services.common.security.tokens import OPS, READ, SERVICE, TIERS, TRADE, TokenIssuer, TokenKeys, new_key
from services.jobs import cli as jobs_cli
from services.matcher.backtest import cli as backtest_cli

MAX_USER_TOKEN_SECONDS = 24 * 3600
MAX_OPS_TOKEN_SECONDS = 3600
MAX_SERVICE_TOKEN_SECONDS = 3600


def _ttl(maximum: int):
    def parse(raw: str) -> int:
        value = int(raw)
        if not 60 <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be between 60 and {maximum} seconds")
        return value

    return parse


def _subject(raw: str) -> str:
    if not USER_ID.match(raw):
        raise argparse.ArgumentTypeError("must be 1-128 letters, digits, '_', '.', '@' or '-'")
    return raw


def _scopes(raw: str) -> tuple[str, ...]:
    scopes = tuple(sorted({part.strip() for part in raw.split(",") if part.strip()}))
    if not scopes or not set(scopes) <= {READ, TRADE}:
        raise argparse.ArgumentTypeError("scopes are read and/or trade, e.g. 'read' or 'read,trade'")
    return scopes


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="mbt", description="MBT operator commands")
    commands = root.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token", help="issue a bearer token").add_subparsers(dest="kind", required=True)
    user = token.add_parser("user", help="a token acting as one user")
    user.add_argument("user_id", type=_subject)
    user.add_argument("--scope", type=_scopes, default=(READ, TRADE), help="read, or read,trade (default)")
    user.add_argument("--tier", choices=TIERS, help="default: the user's tier at the accounts service")
    user.add_argument("--ttl", type=_ttl(MAX_USER_TOKEN_SECONDS), default=3600, help="lifetime in seconds")
    ops = token.add_parser(OPS, help="a read-only ops token; name the user with x-mbt-act-as-user")
    ops.add_argument("operator", type=_subject)
    ops.add_argument("--ttl", type=_ttl(MAX_OPS_TOKEN_SECONDS), default=900, help="lifetime in seconds")
    service = token.add_parser(SERVICE, help="a service token (stepping the replay clock, other internal RPCs)")
    service.add_argument("name", type=_subject)
    service.add_argument("--ttl", type=_ttl(MAX_SERVICE_TOKEN_SECONDS), default=600, help="lifetime in seconds")
    keys = commands.add_parser("keys", help="signing keys").add_subparsers(dest="action", required=True)
    keys.add_parser("new", help="print a new kid:secret entry for MBT_USER_TOKEN_KEYS or MBT_SERVICE_TOKEN_KEYS")
    backtest_cli.add_parser(commands)
    jobs_cli.add_parser(commands)
    audit_cli.add_parser(commands)
    graduation_cli.add_parser(commands)
    return root


class TierUnknown(Exception):
    """Accounts could not say the user's tier."""


async def _tier(settings: Settings, issuer: TokenIssuer, user_id: str) -> str:
    target = settings.service("accounts").target
    channel = open_channel(target, keepalive_seconds=settings.grpc_keepalive_seconds)
    try:
        lookup = TierLookup(lambda: channel, ServiceCredentials(issuer, "cli"), settings.rpc_timeout_seconds)
        return await lookup.ask(user_id)
    except grpc.aio.AioRpcError as exc:
        raise TierUnknown(
            f"cannot ask accounts at {target} for {user_id}'s tier ({exc.code().name}: "
            f"{exc.details()}); start MBT (make run) or set MBT_ACCOUNTS_TARGET, "
            f"or give the tier with --tier"
        ) from None
    finally:
        await channel.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "keys":
        print(new_key())
        return 0
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"mbt: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "backtest":
        return backtest_cli.main(args, settings)
    if args.command == "jobs":
        return jobs_cli.main(args, settings)
    if args.command == "audit":
        return audit_cli.main(args, settings)
    if args.command == "graduation":
        return graduation_cli.main(args, settings)
    issuer = TokenIssuer(TokenKeys.from_settings(settings))
    if args.kind == OPS:
        print(issuer.ops(args.operator, ttl_seconds=args.ttl))
        return 0
    if args.kind == SERVICE:
        print(issuer.service(args.name, ttl_seconds=args.ttl))
        return 0
    try:
        tier = args.tier or asyncio.run(_tier(settings, issuer, args.user_id))
    except TierUnknown as exc:
        print(f"mbt: {exc}", file=sys.stderr)
        return 1
    print(issuer.user(args.user_id, tier=tier, scopes=args.scope, ttl_seconds=args.ttl))
    print(
        f"mbt: user token for {args.user_id} (tier {tier}, scope {' '.join(args.scope)}, {args.ttl}s)", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
