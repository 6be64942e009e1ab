"""Identity on every hop, over real gRPC against the real mesh: internal RPCs refuse user
tokens, ops tokens only read (naming the user, audited), bad tokens are unauthenticated,
and nothing but a signed service token can pose as the gateway or a service."""

import re

import grpc
import jwt
import pytest
from google.protobuf import any_pb2
from sqlalchemy import create_engine, select

from mbt.accounts.v1 import accounts_pb2
from mbt.activities.v1 import activities_pb2
from mbt.common.v1 import audit_pb2
from mbt.orders.v1 import orders_pb2
from services.accounts.store import OUTBOX as ACCOUNTS_OUTBOX
from services.activities.store import OUTBOX as ACTIVITIES_OUTBOX
from services.common.persistence.db import normalize_url
from services.common.rpc import protoregistry
from services.common.rpc.protoregistry import message_class
from services.common.security import access
from services.common.security.auth import ACT_AS_USER, FORWARDED_BY, bearer
from services.common.security.tokens import TokenIssuer, TokenKeys, development_key
from tests.conftest import BACKENDS
from tests.support.databases import DatabaseFactory
from tests.support.errors import error_info
from tests.support.identity import TOKENS, as_ops, as_service, as_user, user_token
from tests.support.mesh import mesh_settings, start_mesh

GET_ACCOUNT = "/mbt.accounts.v1.AccountsService/GetAccount"
LIST_AUDIT_LOG = "/mbt.activities.v1.ActivitiesService/ListAuditLog"
OUTBOXES = {"accounts": ACCOUNTS_OUTBOX, "activities": ACTIVITIES_OUTBOX}
SUBMIT_ORDER = "/mbt.orders.v1.OrdersService/SubmitOrder"


@pytest.fixture(scope="module", params=BACKENDS)
async def mesh(request, tmp_path_factory):
    """One mesh for the module (these tests only read, or are refused before any write)."""
    databases = DatabaseFactory(request.param, tmp_path_factory.mktemp("mesh"))
    mesh = await start_mesh(mesh_settings(databases, tmp_path_factory.mktemp("data")))
    yield mesh
    await mesh.stop()
    databases.drop_all()


def hosted_methods(mesh):
    """(target, method path, request class, server-streaming) for every RPC the mesh serves."""
    by_name = {service.full_name: service for service in protoregistry.services()}
    for name, running in mesh.services.items():
        for registration in running.runtime.registrations:
            service = by_name[registration.service_name]
            for method in service.methods:
                yield (
                    mesh.target(name),
                    f"/{service.full_name}/{method.name}",
                    message_class(method.input_type.full_name),
                    method.server_streaming,
                )


async def call(target: str, path: str, request_class, streaming: bool, metadata) -> grpc.StatusCode:
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            if streaming:
                stream = channel.unary_stream(
                    path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=lambda b: b
                )(request_class(), metadata=metadata, timeout=5)
                async for _ in stream:
                    break
                stream.cancel()
            else:
                await channel.unary_unary(
                    path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=lambda b: b
                )(request_class(), metadata=metadata, timeout=5)
        except grpc.aio.AioRpcError as exc:
            return exc.code(), error_info(exc)[0]
    return grpc.StatusCode.OK, ""


async def test_a_user_token_calling_any_internal_rpc_directly_is_refused(mesh):
    internal = [m for m in hosted_methods(mesh) if m[1] not in access.user_facing_methods()]
    assert {
        "/mbt.accounts.v1.AccountsService/ReserveBuyingPower",
        "/mbt.orders.v1.OrdersService/RecordFill",
        "/mbt.common.v1.EventSinkService/Deliver",
        "/mbt.common.v1.UserDataService/EraseUserData",
        "/mbt.marketdata.v1.MarketDataService/StepClock",
    } <= {path for _, path, _, _ in internal}
    for target, path, request_class, streaming in internal:
        outcome = await call(target, path, request_class, streaming, as_user("mallory", tier="pro_plus"))
        assert outcome == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED"), path


async def test_ops_tokens_can_change_nothing(mesh):
    writes = [m for m in hosted_methods(mesh) if m[1] not in access.read_only_methods()]
    assert SUBMIT_ORDER in {path for _, path, _, _ in writes}
    for target, path, request_class, streaming in writes:
        outcome = await call(target, path, request_class, streaming, as_ops("carol", reading_user="alice"))
        assert outcome == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED"), path


def forged_user_token(**changes) -> str:
    payload = {**jwt.decode(user_token("alice"), options={"verify_signature": False}), **changes}
    return jwt.encode(payload, development_key("user")[1], algorithm="HS256", headers={"kid": "dev-user"})


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param(
            lambda: bearer(jwt.encode({"sub": "alice"}, b"k" * 32, algorithm="HS256", headers={"kid": "dev-user"})),
            id="bad signature",
        ),
        pytest.param(
            lambda: bearer(jwt.encode({"sub": "alice"}, b"k" * 32, algorithm="HS256", headers={"kid": "nope"})),
            id="unknown kid",
        ),
        pytest.param(
            lambda: bearer(
                TokenIssuer(TokenKeys.development(), now=lambda: 1_000_000).user("alice", tier="free", ttl_seconds=60)
            ),
            id="expired",
        ),
        pytest.param(lambda: bearer(forged_user_token(typ="service")), id="user key posing as a service"),
        pytest.param(
            lambda: bearer(
                jwt.encode({"typ": ["user"], "sub": "alice"}, b"k" * 32, algorithm="HS256", headers={"kid": "dev-user"})
            ),
            id="bad signature, kind a list",
        ),
        pytest.param(lambda: bearer(forged_user_token(typ=["user"])), id="signed, kind a list"),
        pytest.param(lambda: bearer(forged_user_token(elv="soon")), id="signed, elevated-until a string"),
        pytest.param(lambda: bearer(forged_user_token(tier=["pro"])), id="signed, tier a list"),
        pytest.param(lambda: [("authorization", "Basic YWxpY2U=")], id="not bearer"),
        pytest.param(lambda: [*as_user("alice"), (FORWARDED_BY, user_token("alice"))], id="forwarded-by a user token"),
        pytest.param(lambda: [(ACT_AS_USER, "alice")], id="act-as without a token"),
    ],
)
async def test_bad_credentials_are_unauthenticated(mesh, metadata):
    outcome = await call(mesh.target("accounts"), GET_ACCOUNT, accounts_pb2.GetAccountRequest, False, metadata())
    assert outcome == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")


async def test_only_ops_tokens_may_act_as_a_user(mesh):
    for metadata in ([*as_user("mallory"), (ACT_AS_USER, "alice")], [*as_service("orders"), (ACT_AS_USER, "alice")]):
        outcome = await call(mesh.target("accounts"), GET_ACCOUNT, accounts_pb2.GetAccountRequest, False, metadata)
        assert outcome == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")


async def test_an_ops_read_must_name_the_user(mesh):
    outcome = await call(mesh.target("accounts"), GET_ACCOUNT, accounts_pb2.GetAccountRequest, False, as_ops("carol"))
    assert outcome == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")


def audits_in_outbox(mesh, service: str = "accounts") -> list[audit_pb2.AuditRecorded]:
    """The audit messages in a service's outbox, oldest first."""
    outbox = OUTBOXES[service].outbox
    engine = create_engine(normalize_url(mesh.settings.service(service).database_url))
    with engine.connect() as conn:
        rows = conn.execute(
            select(outbox.c.payload)
            .where(outbox.c.event_type == "mbt.common.v1.AuditRecorded")
            .order_by(outbox.c.sequence)
        ).all()
    engine.dispose()
    audits = []
    for row in rows:
        audit = audit_pb2.AuditRecorded()
        any_pb2.Any.FromString(row.payload).Unpack(audit)
        audits.append(audit)
    return audits


async def test_an_ops_read_of_a_users_account_is_audited(mesh):
    opened = await call(mesh.target("accounts"), GET_ACCOUNT, accounts_pb2.GetAccountRequest, False, as_user("alice"))
    assert opened == (grpc.StatusCode.OK, "")
    outcome = await call(
        mesh.target("accounts"),
        GET_ACCOUNT,
        accounts_pb2.GetAccountRequest,
        False,
        as_ops("auditor-carol", reading_user="alice"),
    )
    assert outcome == (grpc.StatusCode.OK, "")
    assert [
        (a.actor_type, a.actor_id, a.action, a.user_id, a.entity_id)
        for a in audits_in_outbox(mesh)
        if a.actor_id == "auditor-carol" and a.action == "read"
    ] == [(audit_pb2.ACTOR_TYPE_OPS, "auditor-carol", "read", "alice", "AccountsService/GetAccount")]


async def test_an_internal_read_refuses_act_as_so_the_audit_names_whose_data_was_read(mesh):
    """Internal reads name their subject in the request (ListAuditLog's user_id): a header
    naming someone else would have put the read on that person's record."""
    async with grpc.aio.insecure_channel(mesh.target("activities")) as channel:
        list_audit_log = channel.unary_unary(
            LIST_AUDIT_LOG,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=activities_pb2.ListAuditLogResponse.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await list_audit_log(
                activities_pb2.ListAuditLogRequest(user_id="bob"),
                metadata=as_ops("auditor-dave", reading_user="alice"),
                timeout=5,
            )
        assert (refused.value.code(), error_info(refused.value)[0]) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
        )
        await list_audit_log(
            activities_pb2.ListAuditLogRequest(user_id="bob"), metadata=as_ops("auditor-dave"), timeout=5
        )
    assert [
        (a.actor_id, a.user_id, a.entity_id)
        for a in audits_in_outbox(mesh, "activities")
        if a.actor_id == "auditor-dave"
    ] == [("auditor-dave", "bob", "ActivitiesService/ListAuditLog")]


@pytest.mark.parametrize("sent", ["x" * 6000, "short", "req id with spaces", "req_'; drop table--"])
async def test_a_native_clients_malformed_request_id_is_replaced_never_stored(mesh, sent):
    operator = f"auditor-rid-{len(sent)}-{sent[:5].strip()}"
    outcome = await call(
        mesh.target("accounts"),
        GET_ACCOUNT,
        accounts_pb2.GetAccountRequest,
        False,
        [*as_ops(operator, reading_user="nobody-rid"), ("x-request-id", sent)],
    )
    assert outcome == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")  # audited before it is served
    [audit] = [a for a in audits_in_outbox(mesh) if a.actor_id == operator]
    assert audit.request_id != sent and re.fullmatch(r"req_[0-9a-f]{24}", audit.request_id)


async def test_a_well_formed_request_id_travels_into_the_audit_row(mesh):
    outcome = await call(
        mesh.target("accounts"),
        GET_ACCOUNT,
        accounts_pb2.GetAccountRequest,
        False,
        [*as_ops("auditor-rid-ok", reading_user="nobody-rid"), ("x-request-id", "client-chose-this.1")],
    )
    assert outcome == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    assert [a.request_id for a in audits_in_outbox(mesh) if a.actor_id == "auditor-rid-ok"] == ["client-chose-this.1"]


async def test_a_read_only_user_token_reads_but_cannot_trade(mesh):
    read_only = bearer(TOKENS.user("alice", tier="free", scopes=("read",), ttl_seconds=600))
    submitted = await call(mesh.target("orders"), SUBMIT_ORDER, orders_pb2.SubmitOrderRequest, False, read_only)
    assert submitted == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
    listed = await call(
        mesh.target("orders"), "/mbt.orders.v1.OrdersService/ListOrders", orders_pb2.ListOrdersRequest, False, read_only
    )
    assert listed == (grpc.StatusCode.OK, "")


async def test_services_reach_internal_rpcs_with_their_service_token(mesh):
    """Past the identity check, the request itself is judged: an empty one names what it lacks."""
    outcome = await call(
        mesh.target("accounts"),
        "/mbt.accounts.v1.AccountsService/ReserveBuyingPower",
        accounts_pb2.ReserveBuyingPowerRequest,
        False,
        as_service("orders"),
    )
    assert outcome == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    updated = await call(
        mesh.target("accounts"),
        "/mbt.accounts.v1.AccountsService/UpdateUser",
        lambda: accounts_pb2.UpdateUserRequest(user_id="svc-user", tier=accounts_pb2.TIER_PRO),
        False,
        as_service("console"),
    )
    assert updated == (grpc.StatusCode.OK, "")


async def test_an_ops_read_never_opens_an_account(mesh):
    for _ in range(2):  # the first read must not have created it
        outcome = await call(
            mesh.target("accounts"),
            GET_ACCOUNT,
            accounts_pb2.GetAccountRequest,
            False,
            as_ops("carol", reading_user="nobody-has-signed-in-as-me"),
        )
        assert outcome == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
