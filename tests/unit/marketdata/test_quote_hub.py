"""Fan-out: one upstream subscription per symbol whatever the number of subscribers;
every subscriber gets every tick in feed order; a full queue turns into an explicit gap."""

import asyncio
from decimal import Decimal

from services.marketdata.domain.ticks import Source, Tick
from services.marketdata.hub import Gap, QuoteHub


def tick(symbol: str, sequence: int) -> Tick:
    return Tick.quote(
        symbol, 1_000 + sequence, sequence, Decimal("10.00"), Decimal(1), Decimal("10.01"), Decimal(1), Source.REPLAY
    )


class Upstream:
    def __init__(self) -> None:
        self.subscribed: list[str] = []
        self.unsubscribed: list[str] = []

    async def subscribe(self, symbols):
        self.subscribed += symbols

    async def unsubscribe(self, symbols):
        self.unsubscribed += symbols


def make_hub(capacity=100, unsubscribe_after_seconds=0.0):
    upstream, archived = Upstream(), []
    hub = QuoteHub(
        capacity=capacity,
        subscribe_upstream=upstream.subscribe,
        unsubscribe_upstream=upstream.unsubscribe,
        archive=archived.extend,
        unsubscribe_after_seconds=unsubscribe_after_seconds,
    )
    return hub, upstream, archived


async def drain(subscription, count):
    items = []
    while len(items) < count:
        items += await subscription.next_batch(1000)
    return items


async def test_many_subscribers_share_one_upstream_subscription_and_all_get_every_tick():
    hub, upstream, archived = make_hub()
    subscribers = [await hub.subscribe(["AMZN"]) for _ in range(5)]
    both = await hub.subscribe(["AMZN", "GOOG"])
    assert upstream.subscribed == ["AMZN", "GOOG"]
    feed = [tick("AMZN", 1), tick("GOOG", 1), tick("AMZN", 2)]
    hub.publish(feed)
    for subscription in subscribers:
        assert await drain(subscription, 2) == [feed[0], feed[2]]
    assert await drain(both, 3) == feed
    assert archived == feed
    for subscription in subscribers:
        await hub.unsubscribe(subscription)
    assert upstream.unsubscribed == []
    await hub.unsubscribe(both)
    assert sorted(upstream.unsubscribed) == ["AMZN", "GOOG"]


async def test_a_symbol_nobody_listens_to_stays_subscribed_and_archived_for_the_grace_period():
    hub, upstream, archived = make_hub(unsubscribe_after_seconds=0.2)
    matcher = await hub.subscribe(["AMZN", "GOOG"])
    await hub.unsubscribe(matcher)  # the matcher went down
    hub.publish([tick("AMZN", 1)])
    assert upstream.unsubscribed == [] and archived == [tick("AMZN", 1)]
    restarted = await hub.subscribe(["AMZN"])  # back within the grace period: no new upstream subscription
    assert upstream.subscribed == ["AMZN", "GOOG"]
    await asyncio.sleep(0.4)
    assert upstream.unsubscribed == ["GOOG"]  # released: nobody came back for it
    await hub.unsubscribe(restarted)
    await asyncio.sleep(0.4)
    assert upstream.unsubscribed == ["GOOG", "AMZN"]
    again = await hub.subscribe(["AMZN"])
    assert upstream.subscribed == ["AMZN", "GOOG", "AMZN"]
    await hub.unsubscribe(again)


async def test_a_full_queue_reports_what_it_missed_in_feed_order():
    hub, _, _ = make_hub(capacity=3)
    slow = await hub.subscribe(["AMZN", "GOOG"])
    hub.publish([tick("AMZN", n) for n in (1, 2, 3)] + [tick("AMZN", 4), tick("GOOG", 7), tick("AMZN", 5)])
    items = await drain(slow, 3)
    assert [i.sequence for i in items] == [1, 2, 3]
    hub.publish([tick("AMZN", 6)])
    items = await slow.next_batch(10)
    assert items == [Gap("AMZN", 2, 4, 5), Gap("GOOG", 1, 7, 7), tick("AMZN", 6)]
    assert slow.dropped == 3


async def test_gaps_reach_a_subscriber_even_when_the_feed_goes_quiet():
    hub, _, _ = make_hub(capacity=1)
    slow = await hub.subscribe(["AMZN"])
    hub.publish([tick("AMZN", 1), tick("AMZN", 2)])
    assert await slow.next_batch(10) == [tick("AMZN", 1)]
    assert await slow.next_batch(10) == [Gap("AMZN", 1, 2, 2)]


async def test_patient_delivery_waits_for_a_reading_subscriber_and_drops_nothing():
    hub, _, _ = make_hub(capacity=10)
    reader = await hub.subscribe(["AMZN"])
    received = []

    async def read():
        while len(received) < 95:
            received.extend(await reader.next_batch(3))
            await asyncio.sleep(0)

    reading = asyncio.create_task(read())
    delivered = await hub.deliver([tick("AMZN", n) for n in range(1, 96)], stall_seconds=30)
    await reading
    assert delivered == 95
    assert [t.sequence for t in received] == list(range(1, 96))
    assert reader.dropped == 0


async def test_patient_delivery_gives_up_on_a_subscriber_that_stopped_reading():
    hub, _, _ = make_hub(capacity=4)
    stuck = await hub.subscribe(["AMZN"])
    delivered = await hub.deliver([tick("AMZN", n) for n in range(1, 11)], stall_seconds=0.01)
    assert delivered == 10
    items = await drain(stuck, 5)
    assert [i.sequence for i in items[:4]] == [1, 2, 3, 4]
    assert items[4] == Gap("AMZN", 6, 5, 10)
