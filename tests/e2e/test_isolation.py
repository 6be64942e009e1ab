"""Another user's data is unreachable by every route: for every endpoint that takes an id,
user B using user A's id gets not_found (REST and native gRPC), and nothing of A's changes.
Runs on the whole mesh over a stepped replay, where A really trades."""

import grpc
import pytest
from google.api import field_behavior_pb2

from gateway.routes import bindings
from mbt.accounts.v1 import accounts_pb2, accounts_pb2_grpc, privacy_pb2, privacy_pb2_grpc
from mbt.activities.v1 import activities_pb2, activities_pb2_grpc
from mbt.matcher.v1 import matcher_pb2, matcher_pb2_grpc
from mbt.orders.v1 import orders_pb2, orders_pb2_grpc
from services.common.ids import derived_id
from tests.support.identity import as_user, sign_in
from tests.support.mesh import gateway_client
from tests.support.trading import eventually, rest_as, start_trading_mesh

# Endpoints whose id names something a user owns, and the id of A's that fills it in.
USER_OWNED = {
    ("GET", "/api/mbt/orders/{order_id}"): "order_id",
    ("DELETE", "/api/mbt/orders/{order_id}"): "resting_order_id",
    ("PATCH", "/api/mbt/orders/{order_id}"): "resting_order_id",
    ("GET", "/api/mbt/activities/{activity_id}"): "activity_id",
    ("POST", "/api/mbt/notifications/{notification_id}/read"): "notification_id",
    ("GET", "/api/mbt/fills/{fill_id}/explain"): "fill_id",
    ("GET", "/api/mbt/positions/{symbol}"): "symbol",
    ("POST", "/api/mbt/positions/{symbol}/exercise"): "option_symbol",
    ("POST", "/api/mbt/positions/{symbol}/do-not-exercise"): "option_symbol",
    ("DELETE", "/api/mbt/positions/{symbol}/do-not-exercise"): "option_symbol",
    ("GET", "/api/mbt/backtests/{backtest_id}"): "backtest_id",
    ("GET", "/api/mbt/backtests/{backtest_id}/report"): "backtest_id",
    ("GET", "/api/mbt/backtests/{backtest_id}/files/{name}"): "backtest_id",
    ("GET", "/api/mbt/exports/{export_id}"): "export_id",
    ("GET", "/api/mbt/exports/{export_id}/archive"): "export_id",
}
# Endpoints whose id is public market data: the same answer for everyone of a tier, the id
# in the path or (a required field) in the query.
MARKET_DATA = {
    ("GET", "/api/mbt/quotes/{symbol}"),
    ("GET", "/api/mbt/quotes/{symbol}/history"),
    ("GET", "/api/mbt/symbols/{symbol}"),
    ("GET", "/api/mbt/bars/{symbol}"),
}
MARKET_DATA_BY_QUERY = {
    ("GET", "/api/mbt/quotes"): {"symbols": "AMZN"},
    ("GET", "/api/mbt/options/chain"): {"underlying": "AMZN", "expiry": "2012-06-22"},
}


def _required_query_fields(binding) -> bool:
    required = [
        f
        for f in binding.method.input_type.fields
        if field_behavior_pb2.REQUIRED in f.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    ]
    return not binding.body and any(f.name not in binding.path_params.values() for f in required)


def test_every_endpoint_that_takes_an_id_is_in_the_matrix():
    with_ids = {(b.http_method, b.template) for b in bindings() if b.path_params}
    assert with_ids == set(USER_OWNED) | MARKET_DATA
    by_query = {(b.http_method, b.template) for b in bindings() if not b.path_params and _required_query_fields(b)}
    assert by_query == set(MARKET_DATA_BY_QUERY)


@pytest.fixture
async def mesh(databases, tmp_path):
    mesh = await start_trading_mesh(databases, tmp_path)
    yield mesh
    await mesh.stop()


async def alices_ids(alice) -> dict[str, str]:
    """Alice trades for real: a filled market buy (order, fill, activity, position) and a
    limit buy far below the market that rests."""
    bought = await alice.post(
        "/api/mbt/orders",
        json={"symbol": "AMZN", "side": "buy", "qty": "1", "order_type": "market", "time_in_force": "day"},
    )
    assert bought.status_code == 200, bought.text
    order_id = bought.json()["data"]["order_id"]

    async def filled():
        order = (await alice.get(f"/api/mbt/orders/{order_id}")).json()["data"]
        assert order["status"] == "filled", order
        return order

    fill_id = (await eventually(filled))["fills"][0]["fill_id"]

    async def activity():
        rows = (await alice.get("/api/mbt/activities", params={"type": "fill"})).json()["data"]
        assert rows
        return rows[0]["activity_id"]

    resting = await alice.post(
        "/api/mbt/orders",
        json={
            "symbol": "AMZN",
            "side": "buy",
            "qty": "1",
            "order_type": "limit",
            "limit_price": "1.00",
            "time_in_force": "gtc",
        },
    )
    assert resting.status_code == 200, resting.text
    backtest = await alice.post(
        "/api/mbt/backtests", json={"strategy": "grid", "from_date": "2012-06-21", "to_date": "2012-06-21"}
    )
    assert backtest.status_code == 200, backtest.text
    export = await alice.post("/api/mbt/exports", json={})
    assert export.status_code == 200, export.text
    return {
        "order_id": order_id,
        "fill_id": fill_id,
        "activity_id": await eventually(activity),
        # The fill's notification (its id derives from the fill's).
        "notification_id": derived_id("ntf", fill_id),
        "resting_order_id": resting.json()["data"]["order_id"],
        "symbol": "AMZN",
        # No option is traded yet: exercising a contract one does not hold is not_found.
        "option_symbol": "AMZN120720C00220000",
        "backtest_id": backtest.json()["data"]["backtest_id"],
        "export_id": export.json()["data"]["export_id"],
    }


async def test_user_b_gets_not_found_for_every_id_of_user_a(mesh):
    async with gateway_client(mesh.app) as alice, gateway_client(mesh.app) as bob:
        await sign_in(alice, "alice")
        await sign_in(bob, "bob")
        ids = await alices_ids(alice)
        before = (await alice.get(f"/api/mbt/orders/{ids['resting_order_id']}")).json()["data"]

        for (method, template), id_name in USER_OWNED.items():
            path = template.replace("{" + template.split("{")[1].split("}")[0] + "}", ids[id_name])
            path = path.replace("{name}", "report.html")
            response = await bob.request(method, path, json={"qty": "5"} if method == "PATCH" else None)
            assert response.status_code == 404, (method, template, response.text)
            assert response.json()["error"]["code"] == "not_found"

        after = (await alice.get(f"/api/mbt/orders/{ids['resting_order_id']}")).json()["data"]
        assert (after["status"], after["qty"], after["version"]) == (before["status"], before["qty"], before["version"])
        bobs_orders = (await bob.get("/api/mbt/orders")).json()["data"]
        assert bobs_orders == []
        for (method, path), params in MARKET_DATA_BY_QUERY.items():
            mine, theirs = (
                await alice.request(method, path, params=params),
                await bob.request(method, path, params=params),
            )
            assert mine.status_code == theirs.status_code == 200, (path, theirs.text)
            assert mine.json()["data"] == theirs.json()["data"]

        await native_b_gets_not_found(mesh, ids)


ODD_IDS = [
    "ünïcødé",
    "%00",
    "a%0Ab",
    "<script>",
    "' OR 1=1 --",
    "😀" * 10,
    "%E2%80%AE",
    "%25",
    "a b",
    "ord_" + "a" * 24,
    "fill_%00",
]


async def test_an_odd_id_is_only_an_id_nobody_has(mesh):
    """On PostgreSQL a NUL cannot even be sent in a query: such ids must be answered before."""
    async with rest_as(mesh, "carol") as carol:
        for method, template in USER_OWNED:
            for odd in ODD_IDS:
                path = template.replace("{" + template.split("{")[1].split("}")[0] + "}", odd)
                response = await carol.request(method, path, json={"qty": "5"} if method == "PATCH" else None)
                assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found"), (
                    method,
                    path,
                    response.text,
                )


async def native_b_gets_not_found(mesh, ids: dict[str, str]) -> None:
    bob = as_user("bob")
    calls = [
        ("orders", orders_pb2_grpc.OrdersServiceStub, "GetOrder", orders_pb2.GetOrderRequest(order_id=ids["order_id"])),
        (
            "orders",
            orders_pb2_grpc.OrdersServiceStub,
            "CancelOrder",
            orders_pb2.CancelOrderRequest(order_id=ids["resting_order_id"]),
        ),
        (
            "orders",
            orders_pb2_grpc.OrdersServiceStub,
            "ReplaceOrder",
            orders_pb2.ReplaceOrderRequest(order_id=ids["resting_order_id"], qty="5"),
        ),
        (
            "activities",
            activities_pb2_grpc.ActivitiesServiceStub,
            "GetActivity",
            activities_pb2.GetActivityRequest(activity_id=ids["activity_id"]),
        ),
        (
            "activities",
            activities_pb2_grpc.NotificationsServiceStub,
            "MarkNotificationRead",
            activities_pb2.MarkNotificationReadRequest(notification_id=ids["notification_id"]),
        ),
        (
            "matcher",
            matcher_pb2_grpc.MatcherServiceStub,
            "ExplainFill",
            matcher_pb2.ExplainFillRequest(fill_id=ids["fill_id"]),
        ),
        (
            "accounts",
            accounts_pb2_grpc.AccountsServiceStub,
            "GetPosition",
            accounts_pb2.GetPositionRequest(symbol=ids["symbol"]),
        ),
        (
            "accounts",
            accounts_pb2_grpc.AccountsServiceStub,
            "ExerciseOption",
            accounts_pb2.ExerciseOptionRequest(symbol=ids["option_symbol"]),
        ),
        (
            "accounts",
            accounts_pb2_grpc.AccountsServiceStub,
            "InstructDoNotExercise",
            accounts_pb2.InstructDoNotExerciseRequest(symbol=ids["option_symbol"]),
        ),
        (
            "accounts",
            accounts_pb2_grpc.AccountsServiceStub,
            "WithdrawDoNotExercise",
            accounts_pb2.WithdrawDoNotExerciseRequest(symbol=ids["option_symbol"]),
        ),
        (
            "accounts",
            privacy_pb2_grpc.PrivacyServiceStub,
            "GetDataExport",
            privacy_pb2.GetDataExportRequest(export_id=ids["export_id"]),
        ),
        (
            "accounts",
            privacy_pb2_grpc.PrivacyServiceStub,
            "GetDataExportArchive",
            privacy_pb2.GetDataExportArchiveRequest(export_id=ids["export_id"]),
        ),
        (
            "matcher",
            matcher_pb2_grpc.BacktestServiceStub,
            "GetBacktest",
            matcher_pb2.GetBacktestRequest(backtest_id=ids["backtest_id"]),
        ),
        (
            "matcher",
            matcher_pb2_grpc.BacktestServiceStub,
            "GetBacktestFile",
            matcher_pb2.GetBacktestFileRequest(backtest_id=ids["backtest_id"], name="fills.csv"),
        ),
    ]
    for service, stub_class, method, request in calls:
        async with grpc.aio.insecure_channel(mesh.target(service)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await getattr(stub_class(channel), method)(request, metadata=bob, timeout=10)
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND, (method, refused.value.details())
