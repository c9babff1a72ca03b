"""Rules of the catalog settings: which products and classifications computers are offered."""

from __future__ import annotations

from collections.abc import Iterable

from libs.contracts.catalog import (
    CLASSIFICATIONS,
    CatalogSettings,
    ChangeSettings,
    ClassificationName,
    SettingsView,
)
from libs.service.errors import InvalidInput
from services.catalog.domain.model import Classification

DEFAULT_PRODUCTS = ("Windows", "Microsoft Office")
"""[decided] The common product categories selected on a new catalog."""

DEFAULT_CLASSIFICATIONS = (
    Classification.CRITICAL_UPDATES,
    Classification.SECURITY_UPDATES,
    Classification.DEFINITION_UPDATES,
    Classification.UPDATE_ROLLUPS,
)
"""[decided] The common classifications selected on a new catalog."""


def check_products(chosen: Iterable[str], available: Iterable[str]) -> list[str]:
    """The chosen product categories, sorted and deduplicated, if all are known."""
    known = set(available)
    result = sorted(set(chosen))
    unknown = [name for name in result if name not in known]
    if unknown:
        raise InvalidInput(
            f"products {unknown} are not product categories of this catalog; "
            f"allowed: {sorted(known)}",
            field="products",
        )
    return result


def ordered_classifications(chosen: Iterable[ClassificationName]) -> list[ClassificationName]:
    """Deduplicated, in the order of docs/product.md's list (stable for events and views)."""
    wanted = set(chosen)
    return [name for name in CLASSIFICATIONS if name in wanted]


def settings_view(current: CatalogSettings, known_families: Iterable[str]) -> SettingsView:
    """The settings with what may be chosen: every known family (and any still chosen)."""
    return SettingsView(
        settings=current,
        available_products=sorted({*known_families, *current.products}),
        available_classifications=list(CLASSIFICATIONS),
    )


def changed_settings(view: SettingsView, command: ChangeSettings) -> CatalogSettings:
    """The settings a change asks for; what it leaves out stays as it is."""
    current = view.settings
    return CatalogSettings(
        products=current.products
        if command.products is None
        else check_products(command.products, view.available_products),
        classifications=current.classifications
        if command.classifications is None
        else ordered_classifications(command.classifications),
    )
