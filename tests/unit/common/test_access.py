"""The access policy, derived from the contracts: who may call what."""

import pytest

from services.common.errors import DomainError
from services.common.rpc.context import ANONYMOUS, Identity
from services.common.security import access
from services.common.security.auth import ACT_AS_USER, FORWARDED_BY, TokenAuthenticator, bearer
from services.common.security.tokens import TokenIssuer, TokenKeys, TokenVerifier

GET_ACCOUNT = "/mbt.accounts.v1.AccountsService/GetAccount"
SUBMIT = "/mbt.orders.v1.OrdersService/SubmitOrder"
RESERVE = "/mbt.accounts.v1.AccountsService/ReserveBuyingPower"
GET_USER = "/mbt.accounts.v1.AccountsService/GetUser"
AUDIT_LOG = "/mbt.activities.v1.ActivitiesService/ListAuditLog"
ERASE = "/mbt.common.v1.UserDataService/EraseUserData"

USER = Identity(kind="user", subject="alice", tier="free", scopes=frozenset({"read", "trade"}))
READER = Identity(kind="user", subject="alice", tier="free", scopes=frozenset({"read"}))
OPS = Identity(kind="ops", subject="carol", scopes=frozenset({"read"}), acting_for="alice")
OPS_UNNAMED = Identity(kind="ops", subject="carol", scopes=frozenset({"read"}))
SERVICE = Identity(kind="service", subject="orders")


def outcome(method: str, caller: Identity) -> str:
    try:
        access.check(method, caller)
    except DomainError as exc:
        return exc.reason
    return "OK"


@pytest.mark.parametrize(
    "caller, method, expected",
    [
        (ANONYMOUS, GET_ACCOUNT, "UNAUTHENTICATED"),
        (USER, GET_ACCOUNT, "OK"),
        (USER, SUBMIT, "OK"),
        (USER, RESERVE, "PERMISSION_DENIED"),
        (USER, GET_USER, "PERMISSION_DENIED"),
        (USER, ERASE, "PERMISSION_DENIED"),
        (READER, GET_ACCOUNT, "OK"),
        (READER, SUBMIT, "PERMISSION_DENIED"),
        (OPS, GET_ACCOUNT, "OK"),
        (OPS, SUBMIT, "PERMISSION_DENIED"),
        (OPS, RESERVE, "PERMISSION_DENIED"),
        (OPS, ERASE, "PERMISSION_DENIED"),
        # Internal reads name their subject in the request, never in x-mbt-act-as-user.
        (OPS, GET_USER, "INVALID_ARGUMENT"),
        (OPS, AUDIT_LOG, "INVALID_ARGUMENT"),
        (OPS_UNNAMED, GET_ACCOUNT, "INVALID_ARGUMENT"),
        (OPS_UNNAMED, AUDIT_LOG, "OK"),
        (OPS_UNNAMED, GET_USER, "OK"),
        (SERVICE, RESERVE, "OK"),
        (SERVICE, SUBMIT, "OK"),
        (SERVICE, ERASE, "OK"),
    ],
)
def test_the_policy(caller, method, expected):
    assert outcome(method, caller) == expected


def test_reads_are_the_get_bindings_and_the_internal_get_and_list_methods():
    reads = access.read_only_methods()
    assert {GET_ACCOUNT, GET_USER, AUDIT_LOG, "/mbt.orders.v1.OrdersService/ListOrders"} <= reads
    assert (
        not {
            SUBMIT,
            RESERVE,
            ERASE,
            "/mbt.orders.v1.OrdersService/CancelOrder",
            "/mbt.marketdata.v1.MarketDataService/StepClock",
        }
        & reads
    )


def test_an_ops_caller_reads_as_the_user_it_names():
    assert OPS.user_id == "alice" and OPS_UNNAMED.user_id == "" and SERVICE.user_id == ""


def test_elevation_is_a_window_of_wall_time():
    elevated = Identity(kind="user", subject="alice", elevated_until=1000)
    assert elevated.is_elevated(999) and not elevated.is_elevated(1000)
    assert not Identity(kind="ops", subject="carol", elevated_until=1000).is_elevated(0)


KEYS = TokenKeys.development()
ISSUE = TokenIssuer(KEYS)


async def test_the_authenticator_reads_only_verified_tokens():
    authenticator = TokenAuthenticator(TokenVerifier(KEYS))
    assert await authenticator.authenticate({}) == ANONYMOUS
    assert await authenticator.authenticate({"x-mbt-user-id": "alice", "x-mbt-service": "orders"}) == ANONYMOUS
    user = await authenticator.authenticate(dict(bearer(ISSUE.user("alice", tier="pro", ttl_seconds=60))))
    assert (user.kind, user.user_id, user.tier, user.forwarded_by) == ("user", "alice", "pro", "")
    forwarded = await authenticator.authenticate(
        {**dict(bearer(ISSUE.user("alice", tier="pro", ttl_seconds=60))), FORWARDED_BY: ISSUE.service("gateway")}
    )
    assert forwarded.forwarded_by == "gateway"
    ops = await authenticator.authenticate({**dict(bearer(ISSUE.ops("carol", ttl_seconds=60))), ACT_AS_USER: "bob"})
    assert (ops.kind, ops.subject, ops.user_id) == ("ops", "carol", "bob")


@pytest.mark.parametrize("act_as", ["", "a b", "x" * 200, "../etc"])
async def test_an_ops_caller_must_name_a_real_user_id(act_as):
    authenticator = TokenAuthenticator(TokenVerifier(KEYS))
    metadata = {**dict(bearer(ISSUE.ops("carol", ttl_seconds=60))), ACT_AS_USER: act_as}
    if act_as:
        with pytest.raises(DomainError, match=ACT_AS_USER):
            await authenticator.authenticate(metadata)
    else:
        assert (await authenticator.authenticate(metadata)).acting_for == ""


EXPORT_ROWS = "/mbt.common.v1.UserDataService/ExportUserData"
CREATE_EXPORT = "/mbt.accounts.v1.PrivacyService/CreateDataExport"
GET_EXPORT = "/mbt.accounts.v1.PrivacyService/GetDataExport"
ERASURE = "/mbt.accounts.v1.PrivacyService/RequestErasure"
COMPLETE_EXPORT = "/mbt.accounts.v1.PrivacyService/CompleteDataExport"


@pytest.mark.parametrize(
    "caller, method, expected",
    [
        # a user's whole data leaves only through the export job, as a service
        (USER, EXPORT_ROWS, "PERMISSION_DENIED"),
        (OPS_UNNAMED, EXPORT_ROWS, "PERMISSION_DENIED"),
        (SERVICE, EXPORT_ROWS, "OK"),
        (USER, CREATE_EXPORT, "OK"),
        (READER, CREATE_EXPORT, "PERMISSION_DENIED"),
        (OPS, GET_EXPORT, "OK"),
        (OPS_UNNAMED, GET_EXPORT, "INVALID_ARGUMENT"),
        (OPS, ERASURE, "PERMISSION_DENIED"),
        (USER, ERASURE, "OK"),
        (USER, COMPLETE_EXPORT, "PERMISSION_DENIED"),
        (SERVICE, COMPLETE_EXPORT, "OK"),
    ],
)
def test_the_privacy_policy(caller, method, expected):
    assert outcome(method, caller) == expected
