"""Expiration follows the exchange calendar, end to end: the real scheduler and worker settle
the options expiring on an early-close day at the do-not-exercise cutoff after that early
close (the pre-close sale an hour before it), on that day's closing price (never a quote
after it), and the options of a week whose Friday is a holiday on the
Thursday, the holiday's eve. The bundled AMZN day is replayed as those sessions
(``MBT_REPLAY_START`` on the day, the recording looped onto it)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from tests.e2e.test_option_expiration import seed_fill
from tests.support.jobs import VARIANTS, jobs_mesh
from tests.support.mesh import mesh_environ
from tests.support.option_views import cash, expirations, holdings
from tests.support.trading import eventually, rest_as

D = Decimal
JOB = "mbt.expire_options"
SALE = "mbt.sell_uncarriable_options"
MINUTE = timedelta(minutes=1)
CUTOFF = timedelta(minutes=90)  # MBT_DO_NOT_EXERCISE_CUTOFF_MINUTES
HOUR = timedelta(hours=1)  # MBT_OPTION_PRE_CLOSE_SALE_MINUTES

# (session, its close in UTC)
BLACK_FRIDAY = (date(2012, 11, 23), datetime(2012, 11, 23, 18, 0, tzinfo=UTC))  # 13:00 New York
GOOD_FRIDAY_EVE = (date(2013, 3, 28), datetime(2013, 3, 28, 20, 0, tzinfo=UTC))  # 16:00 EDT; Friday 29th closed
DAYS = [pytest.param(BLACK_FRIDAY, id="early-close"), pytest.param(GOOD_FRIDAY_EVE, id="holiday-eve")]


def occ(session: date, right: str, strike: int) -> str:
    return f"AMZN{session:%y%m%d}{right}{strike * 1000:08d}"


@pytest.fixture(params=VARIANTS)
def variant(request):
    return request.param


@pytest.mark.parametrize("day", DAYS)
async def test_options_settle_at_the_sessions_own_close_by_the_scheduled_job(variant, day, tmp_path):
    session, close = day
    morning = close - timedelta(hours=3)

    def environ(databases, data_dir, **env):
        return mesh_environ(databases, data_dir, MBT_REPLAY_MODE="stepped", MBT_REPLAY_START=morning.isoformat(), **env)

    itm_call, otm_call = occ(session, "C", 200), occ(session, "C", 260)
    async with jobs_mesh(variant, tmp_path, environ=environ) as (trading, processes, _queue):
        await seed_fill(trading, "alice", itm_call, "buy", "1", "20.00")
        await seed_fill(trading, "alice", otm_call, "buy", "1", "0.05")
        await processes.start("worker")
        await processes.start("scheduler")
        async with rest_as(trading.mesh, "alice") as alice:
            assert await cash(alice) == D("97995.00")  # 100,000 - 2,000 - 5
            # The job is due at the do-not-exercise cutoff after this session's close (90
            # minutes): a minute before it nothing is due; a minute after it, the job settles.
            await trading.step_to(close - MINUTE)

            # The pre-close sale was due an hour before this session's own close: nothing to sell
            # (alice can pay the 200 call's shares).
            async def sale_ran():
                run = await processes.run(SALE, session.isoformat())
                assert run is not None and run.state == "done", run
                assert (run.result["uncarried"], run.result["submitted"]) == (0, 0), run.result

            await eventually(sale_ran, timeout=120)
            [due] = [line for line in processes.log("scheduler").splitlines() if '"job due"' in line and SALE in line]
            assert f'"due_at": "{(close - HOUR).isoformat()}"' in due, due
            await trading.step_to(close + CUTOFF - MINUTE)
            assert await processes.run(JOB, session.isoformat()) is None
            await trading.step_to(close + CUTOFF + MINUTE)

            async def settled():
                run = await processes.run(JOB, session.isoformat())
                assert run is not None and run.state == "done", run
                return run

            run = await eventually(settled, timeout=120)
            assert run.result["outcomes"] == {"exercised": 1, "expired_worthless": 1}, run.result
            assert [r.key for r in await processes.runs(JOB)] == [session.isoformat()]

            assert await cash(alice) == D("77995.00")  # the 200 call exercised: 100 shares at 200
            assert await holdings(alice) == {"AMZN": (D(100), D(200))}
            rows = {r["symbol"]: r for r in await expirations(alice, 2)}
            assert (rows[itm_call]["subtype"], rows[otm_call]["subtype"]) == ("exercised", "expired_worthless")
            assert {r["occurred_at"][:10] for r in rows.values()} == {session.isoformat()}

            # The price used is the session's own close: its day bar ends at the (early) close,
            # no minute bar runs past it, and the exercise names that price (the clock is
            # past the Free tier's 15-minute delay).
            daily = await alice.get(
                "/api/mbt/bars/AMZN", params={"timeframe": "1Day", "from": f"{session.isoformat()}T00:00:00Z"}
            )
            [day_bar] = [b for b in daily.json()["data"] if b["start_time"].startswith(session.isoformat())]
            assert day_bar["end_time"] == close.strftime("%Y-%m-%dT%H:%M:%SZ"), day_bar
            minutes = await alice.get(
                "/api/mbt/bars/AMZN",
                params={
                    "timeframe": "1Min",
                    "from": (close - 2 * MINUTE).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "to": (close + 10 * MINUTE).strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            )
            last_minute = minutes.json()["data"][-1]
            assert last_minute["end_time"] == day_bar["end_time"] and last_minute["close"] == day_bar["close"]
            assert f"${D(day_bar['close']):,}" in rows[itm_call]["description"]
