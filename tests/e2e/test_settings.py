"""The signed-in user's own settings (README "Accounts"): read and changed over REST and
native gRPC, bad input refused naming the field and changing nothing, the tier never
changeable by the user, another user's settings out of reach, and the fill preference
default a multi-leg order that sends none is priced by."""

import grpc
import pytest

from mbt.accounts.v1 import accounts_pb2
from mbt.common.v1 import trading_pb2
from tests.e2e.test_accounts import update_user
from tests.support.errors import error_info
from tests.support.trading import eventually, rest_as, user_metadata

DEFAULTS = {
    "tier": "free",
    "investor_profile": "diversifier",
    "account_type": "cash",
    "fill_preference": "aggressive",
    "fill_preference_chosen": False,
    "starting_cash": "100000.00",
    "starting_cash_cap": "100000.00",
}


async def settings(client) -> dict:
    async def answered():
        response = await client.get("/api/mbt/settings")
        assert response.status_code == 200, response.text
        return response.json()["data"]

    return await eventually(answered)


async def test_settings_are_read_and_changed_over_rest_and_grpc(mesh, trading):
    async with rest_as(mesh, "sana") as sana:
        assert await settings(sana) == DEFAULTS
        changed = await sana.patch("/api/mbt/settings", json={"investor_profile": "trial", "fill_preference": "mid"})
        assert changed.status_code == 200, changed.text
        # Before the account opens, the Trial profile's starting cash is what it will open with.
        expected = DEFAULTS | {"investor_profile": "trial", "fill_preference": "mid", "fill_preference_chosen": True}
        expected |= {"starting_cash": "10000.00"}
        assert changed.json()["data"] == expected
        assert await settings(sana) == expected

        reply = await trading.accounts().UpdateSettings(
            accounts_pb2.UpdateSettingsRequest(account_type=accounts_pb2.ACCOUNT_TYPE_MARGIN),
            metadata=user_metadata("sana"),
        )
        assert (reply.settings.account_type, reply.settings.fill_preference) == (
            accounts_pb2.ACCOUNT_TYPE_MARGIN,
            trading_pb2.FILL_PREFERENCE_MID,
        )
        read = await trading.accounts().GetSettings(accounts_pb2.GetSettingsRequest(), metadata=user_metadata("sana"))
        assert read.settings == reply.settings
        assert (await sana.get("/api/mbt/account")).json()["data"]["account_type"] == "margin"

    async def audited():
        changes = [
            (e.record.before["investor_profile"], e.record.after["investor_profile"], e.record.after["fill_preference"])
            for e in await trading.audit(user_id="sana")
            if (e.record.entity_type, e.record.action) == ("user", "update")
        ]
        assert sorted(changes) == [("diversifier", "trial", "mid"), ("trial", "trial", "mid")], changes

    await eventually(audited)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"investor_profile": "day_trader"}, "investor_profile"),
        ({"fill_preference": "eager"}, "fill_preference"),
        ({"account_type": "crypto"}, "account_type"),
        ({"starting_cash": "100000.01"}, "starting_cash"),
        ({"starting_cash": "-5.00"}, "starting_cash"),
        ({"starting_cash": "0"}, "starting_cash"),
        ({"starting_cash": "250.005"}, "starting_cash"),
        ({"starting_cash": "ten thousand"}, "starting_cash"),
    ],
)
async def test_bad_input_names_the_field_and_changes_nothing(mesh, trading, body, field):
    async with rest_as(mesh, "bert") as bert:
        before = await settings(bert)
        refused = await bert.patch("/api/mbt/settings", json=body)
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert error["code"] == "invalid_argument", error
        assert field in error["message"], error
        assert await settings(bert) == before


async def test_the_tier_is_not_the_users_to_change(mesh, trading):
    async with rest_as(mesh, "tess") as tess:
        await settings(tess)
        refused = await tess.patch("/api/mbt/settings", json={"tier": "pro_plus"})
        assert refused.status_code == 400, refused.text
        assert (await settings(tess))["tier"] == "free"
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await trading.accounts().UpdateUser(
            accounts_pb2.UpdateUserRequest(user_id="tess", tier=accounts_pb2.TIER_PRO_PLUS),
            metadata=user_metadata("tess"),
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED, error_info(denied.value)


async def test_another_users_settings_are_out_of_reach(mesh, trading):
    async with rest_as(mesh, "alice") as alice, rest_as(mesh, "bob") as bob:
        await settings(alice)
        changed = await bob.patch("/api/mbt/settings", json={"investor_profile": "trial", "fill_preference": "mid"})
        assert changed.status_code == 200, changed.text
        await trading.accounts().UpdateSettings(
            accounts_pb2.UpdateSettingsRequest(investor_profile=accounts_pb2.INVESTOR_PROFILE_INCOME_BUILDER),
            metadata=user_metadata("bob"),
        )
        assert await settings(alice) == DEFAULTS
        assert (await settings(bob))["investor_profile"] == "income_builder"


async def test_a_multi_leg_order_that_sends_no_preference_gets_the_users_default(mesh, trading):
    spread = [
        {"symbol": "AMZN120720C00230000", "side": "buy", "ratio": 1},
        {"symbol": "AMZN120720C00240000", "side": "sell", "ratio": 1},
    ]
    async with rest_as(mesh, "fran") as fran:
        await settings(fran)
        changed = await fran.patch("/api/mbt/settings", json={"fill_preference": "conservative"})
        assert changed.status_code == 200, changed.text
        response = await fran.post(
            "/api/mbt/orders",
            json={"legs": spread, "qty": "1", "order_type": "limit", "limit_price": "0.01", "time_in_force": "gtc"},
        )
        assert response.status_code == 200, response.text
        # The Diversifier profile's own default would be aggressive.
        assert response.json()["data"]["fill_preference"] == "conservative"
        sent = await fran.post(
            "/api/mbt/orders",
            json={"legs": spread, "qty": "1", "order_type": "limit", "limit_price": "0.01", "time_in_force": "gtc"}
            | {"fill_preference": "mid"},
        )
        assert sent.status_code == 200, sent.text
        assert sent.json()["data"]["fill_preference"] == "mid"


async def test_the_starting_cash_is_chosen_within_the_cap_before_the_account_opens(mesh, trading):
    async with rest_as(mesh, "cleo") as cleo:
        chosen = await cleo.patch("/api/mbt/settings", json={"starting_cash": "25000.00"})
        assert chosen.status_code == 200, chosen.text
        assert chosen.json()["data"]["starting_cash"] == "25000.00"
        account = (await cleo.get("/api/mbt/account")).json()["data"]
        assert (account["starting_cash"], account["cash"], account["equity"]) == ("25000.00",) * 3

        async def opened():
            rows = (await cleo.get("/api/mbt/activities", params={"type": "account_opened"})).json()["data"]
            assert [row["net_amount"] for row in rows] == ["25000.00"]

        await eventually(opened)
        refused = await cleo.patch("/api/mbt/settings", json={"starting_cash": "30000.00", "fill_preference": "mid"})
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert error["code"] == "failed_precondition", error
        assert "25000.00" in error["message"], error
        # Nothing of the request changed, the fill preference included.
        assert await settings(cleo) == DEFAULTS | {"starting_cash": "25000.00"}
        assert (await cleo.get("/api/mbt/account")).json()["data"]["cash"] == "25000.00"


async def test_a_pro_user_chooses_up_to_a_million_and_not_after_the_first_order(mesh, trading):
    await update_user(trading, "pia", tier=accounts_pb2.TIER_PRO)
    metadata = user_metadata("pia")
    with pytest.raises(grpc.aio.AioRpcError) as above:
        await trading.accounts().UpdateSettings(
            accounts_pb2.UpdateSettingsRequest(starting_cash="1000000.01"), metadata=metadata
        )
    assert above.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(above.value) == ("INVALID_ARGUMENT", {"field": "starting_cash"})
    reply = await trading.accounts().UpdateSettings(
        accounts_pb2.UpdateSettingsRequest(starting_cash="1000000.00"), metadata=metadata
    )
    assert (reply.settings.starting_cash, reply.settings.starting_cash_cap) == ("1000000.00", "1000000.00")
    async with rest_as(mesh, "pia") as pia:
        order = await pia.post(
            "/api/mbt/orders",
            json={"symbol": "AMZN", "side": "buy", "qty": "1", "order_type": "limit", "limit_price": "1.00"}
            | {"time_in_force": "gtc"},
        )
        assert order.status_code == 200, order.text
        assert (await pia.get("/api/mbt/account")).json()["data"]["starting_cash"] == "1000000.00"
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await trading.accounts().UpdateSettings(
            accounts_pb2.UpdateSettingsRequest(starting_cash="500000.00"), metadata=metadata
        )
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION, late.value.details()
