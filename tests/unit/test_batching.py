"""libs/service/batching.py without a broker: batch sizes and what one multiple ack covers."""

from __future__ import annotations

from libs.service.batching import Acks, batch_prefetch
from libs.settings import Settings


class Channel:
    is_closed = False


def test_the_prefetch_holds_several_batches() -> None:
    """A batch fills while the one before it commits (batch = prefetch could not)."""
    assert batch_prefetch(Settings(prefetch=64, batch_size=100)) == 300
    assert batch_prefetch(Settings(prefetch=64, batch_size=10)) == 64
    assert batch_prefetch(Settings(prefetch=500, batch_size=200)) == 600


def test_one_multiple_ack_covers_a_batch_with_nothing_older_pending() -> None:
    acks, channel = Acks(), Channel()
    assert acks.plan(channel, [1, 2, 3]) == (3, [])
    assert acks.plan(channel, [4, 5]) == (5, [])


def test_a_delivery_still_pending_stops_the_multiple_ack() -> None:
    """Tag 2 is elsewhere (the one-message pipeline, or not yet seen): a multiple ack at 4
    would settle it too, so 3 and 4 are acked one by one."""
    acks, channel = Acks(), Channel()
    assert acks.plan(channel, [1, 3, 4]) == (1, [3, 4])
    acks.settled(channel, 2)
    assert acks.plan(channel, [5, 6]) == (6, [])


def test_a_batch_above_an_unsettled_batch_is_acked_one_by_one() -> None:
    acks, channel = Acks(), Channel()
    assert acks.plan(channel, [4, 5]) == (None, [4, 5])
    assert acks.plan(channel, [1, 2, 3]) == (3, [])
    assert acks.plan(channel, [6]) == (6, [])


def test_tags_settled_elsewhere_let_a_multiple_ack_pass() -> None:
    acks, channel = Acks(), Channel()
    acks.settled(channel, 1)
    acks.settled(channel, 3)
    assert acks.plan(channel, [2, 4]) == (4, [])


def test_each_channel_counts_its_own_tags() -> None:
    """A channel reopened after a connection loss starts again at 1."""
    acks, old, new = Acks(), Channel(), Channel()
    assert acks.plan(old, [1, 2]) == (2, [])
    old.is_closed = True
    assert acks.plan(new, [2]) == (None, [2])
    assert acks.plan(new, [1]) == (1, [])
