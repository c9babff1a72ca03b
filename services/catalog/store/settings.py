"""The catalog settings: which products and classifications computers are offered."""

from __future__ import annotations

from datetime import datetime

from libs.contracts.catalog import CatalogSettings
from libs.db.pool import Connection
from services.catalog.domain.offers import SettingsInForce
from services.catalog.domain.settings import DEFAULT_CLASSIFICATIONS, DEFAULT_PRODUCTS


async def load(conn: Connection) -> SettingsInForce:
    """The settings row and its version, written with the defaults on first use."""
    await conn.execute(
        "INSERT INTO settings (products, classifications) VALUES ($1, $2)"
        " ON CONFLICT (id) DO NOTHING",
        list(DEFAULT_PRODUCTS),
        [c.value for c in DEFAULT_CLASSIFICATIONS],
    )
    row = await conn.fetchrow("SELECT products, classifications, version FROM settings")
    assert row is not None  # noqa: S101 - inserted just above
    return SettingsInForce(
        settings=CatalogSettings(
            products=list(row["products"]), classifications=list(row["classifications"])
        ),
        version=row["version"],
    )


async def save(conn: Connection, value: CatalogSettings, now: datetime) -> SettingsInForce:
    """Replace the settings; their version goes up by one."""
    version: int = await conn.fetchval(
        "UPDATE settings SET products = $1, classifications = $2, changed_at = $3,"
        " version = version + 1 RETURNING version",
        value.products,
        list(value.classifications),
        now,
    )
    return SettingsInForce(settings=value, version=version)
