"""Direct publishing sends what the relay would send (libs/db/direct_publish.py): the same
AMQP properties and headers as libs/bus/codec.py's to_amqp. Pure: no broker, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from libs.bus.codec import to_amqp
from libs.contracts.envelope import Envelope
from libs.db.direct_publish import Written, properties

NOW = datetime(2026, 1, 14, 12, 0, 0, 250000, tzinfo=UTC)


@pytest.mark.parametrize("subject", [None, "pc-0042"])
@pytest.mark.parametrize("correlation_id", [None, "7d1f0c3e-58a2-4b9e-a1f4-2c6b8e9d0a17"])
@pytest.mark.parametrize("at", [NOW, NOW.astimezone(timezone(timedelta(hours=9)))])
def test_properties_are_to_amqps(
    subject: str | None, correlation_id: str | None, at: datetime
) -> None:
    envelope = Envelope.new(
        source="lockgate/scheduler",
        type="computer.install.v1",
        subject=subject,
        correlation_id=correlation_id,
        now=at,
    )
    made, expected = properties(envelope), to_amqp(envelope, b"{}").properties
    assert made == expected
    assert made.headers == expected.headers


def test_rows_are_prepared_in_order_with_their_bodies() -> None:
    rows = [
        (
            Envelope.new(source="lockgate/scheduler", type="computer.install.v1", now=NOW),
            f'{{"n":{n}}}'.encode(),
            "lockgate.agents",
            f"computer.pc-{n}.install.v1",
        )
        for n in range(3)
    ]
    prepared = Written(seqs=[7, 8, 9], rows=rows, leased=True).prepared()
    assert [(body, exchange, key) for body, _, exchange, key in prepared] == [
        (body, exchange, key) for _, body, exchange, key in rows
    ]
    assert [p.message_id for _, p, _, _ in prepared] == [e.id for e, _, _, _ in rows]
