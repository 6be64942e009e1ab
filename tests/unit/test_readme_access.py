"""The README's table of who may call each market-data RPC promises nothing the access policy
(``services.common.security.access``) refuses: a table that offered ops a call the policy refuses sent
operators to a PERMISSION_DENIED."""

import re
from pathlib import Path

from services.common.errors import DomainError
from services.common.rpc import protoregistry
from services.common.rpc.context import Identity
from services.common.security import access

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| ((?:`[A-Z][A-Za-z]+(?:\(s\))?`(?:, )?)+) \| ([a-z, +]+) \|", re.M)
NAME = re.compile(r"`([A-Z][A-Za-z]+)(\(s\))?`")
CALLERS = {
    "users": Identity(kind="user", subject="alice", tier="pro_plus", scopes=frozenset({"read", "trade"})),
    "services": Identity(kind="service", subject="orders"),
    "ops": Identity(kind="ops", subject="carol", scopes=frozenset({"read"}), acting_for="alice"),
}


def methods_named(name: str) -> list[str]:
    return [
        f"/{service.full_name}/{method.name}"
        for service in protoregistry.services()
        if service.full_name == "mbt.marketdata.v1.MarketDataService"
        for method in service.methods
        if method.name == name
    ]


def allowed(method: str, caller: Identity) -> bool:
    if caller.kind == "ops" and method not in access.user_facing_methods():
        caller = Identity(kind="ops", subject=caller.subject, scopes=caller.scopes)  # internal: no act-as
    try:
        access.check(method, caller)
    except DomainError:
        return False
    return True


def test_every_caller_the_rpc_table_names_may_call_the_rpc():
    rows = ROW.findall(README.read_text())
    assert len(rows) >= 10, "the market-data RPC table was not found"
    for names, who in rows:
        listed = [part.strip() for part in who.split(",")]
        for name, plural in NAME.findall(names):
            methods = methods_named(name) + (methods_named(name + "s") if plural else [])
            assert methods, name
            for method in methods:
                for kind in listed:
                    assert allowed(method, CALLERS[kind]), f"the README lets {kind} call {method}; the policy refuses"
