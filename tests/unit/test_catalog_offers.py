"""Which updates the catalog settings offer (docs/product.md section 2): pure rules."""

from __future__ import annotations

from libs.contracts.catalog import CatalogSettings
from services.catalog.domain.offers import (
    OfferFacts,
    SettingsInForce,
    offer_changes,
    offer_of,
    revision_changes,
)

SETTINGS = CatalogSettings(
    products=["Microsoft Office", "Windows"],
    classifications=["Critical Updates", "Security Updates"],
)


def facts(
    classification: str = "Security Updates",
    families: tuple[str, ...] = ("Windows",),
    *,
    origin: str = "microsoft",
    update_id: str = "u1",
    revision: int = 1,
) -> OfferFacts:
    return OfferFacts(
        update_id=update_id,
        kb="5074109" if origin == "microsoft" else None,
        title="an update",
        origin="microsoft" if origin == "microsoft" else "third_party",
        revision=revision,
        classification=classification,
        product_families=families,
    )


def test_an_update_is_offered_when_its_classification_and_a_product_are() -> None:
    """Both must be offered; one offered product category among several is enough."""
    offer = offer_of("microsoft", "Security Updates", ("ESU", "Windows"), SETTINGS)
    assert offer.offered
    assert offer.reason == (
        "its classification Security Updates and product category Windows are offered"
    )


def test_a_classification_not_offered_is_named_with_what_is_offered() -> None:
    offer = offer_of("microsoft", "Drivers", ("Windows",), SETTINGS)
    assert not offer.offered
    assert offer.reason == (
        "its classification Drivers is not offered "
        "(offered classifications: Critical Updates, Security Updates)"
    )


def test_products_not_offered_are_named_with_what_is_offered() -> None:
    offer = offer_of("microsoft", "Security Updates", ("SQL Server",), SETTINGS)
    assert not offer.offered
    assert offer.reason == (
        "its product category SQL Server is not offered "
        "(offered products: Microsoft Office, Windows)"
    )
    both = offer_of("microsoft", "Updates", ("SQL Server", "Azure"), SETTINGS)
    assert not both.offered
    assert "classification Updates is not offered" in both.reason
    assert "product categories Azure, SQL Server are not offered" in both.reason


def test_nothing_offered_says_so() -> None:
    """Empty settings offer no Microsoft update, and the reason says `none`."""
    empty = CatalogSettings(products=[], classifications=[])
    offer = offer_of("microsoft", "Security Updates", ("Windows",), empty)
    assert not offer.offered
    assert "(offered classifications: none)" in offer.reason
    assert "(offered products: none)" in offer.reason


def test_third_party_updates_are_always_offered() -> None:
    """Decided (docs/product.md section 2): the settings choose among Microsoft updates; an
    upload is the operator's choice, whatever its classification or manufacturer."""
    empty = CatalogSettings(products=[], classifications=[])
    offer = offer_of("third_party", "Updates", ("Contoso",), empty)
    assert offer.offered
    assert "third-party" in offer.reason


def test_a_settings_change_names_exactly_the_updates_it_moves() -> None:
    """Offered -> withdrawn and back are named, with the new settings version; unchanged
    updates and third-party ones are not."""
    updates = [
        facts(update_id="windows", families=("Windows",)),
        facts(update_id="office", families=("Microsoft Office",), revision=3),
        facts(update_id="sql", families=("SQL Server",)),
        facts(update_id="tp", families=("Contoso",), origin="third_party"),
    ]
    narrower = SettingsInForce(
        CatalogSettings(products=["Windows", "SQL Server"], classifications=["Security Updates"]),
        version=2,
    )
    changed = offer_changes(updates, SETTINGS, narrower)
    assert [(e.update_id, e.offered, e.revision, e.settings_version) for e in changed] == [
        ("office", False, 3, 2),
        ("sql", True, 1, 2),
    ]
    office, sql = changed
    assert "product category Microsoft Office is not offered" in office.reason
    assert "(offered products: Windows, SQL Server)" in office.reason
    assert office.kb == "5074109"
    assert sql.reason.endswith("are offered")
    same = SettingsInForce(SETTINGS, version=3)
    assert offer_changes(updates, SETTINGS, same) == []


def test_a_revision_that_moves_an_update_is_named() -> None:
    """A new revision may change a classification: offered state follows, with an event."""
    in_force = SettingsInForce(SETTINGS, version=5)
    before = facts(classification="Security Updates")
    after = facts(classification="Drivers", revision=2)
    (moved,) = revision_changes([(before, after)], in_force)
    assert (moved.offered, moved.revision, moved.settings_version) == (False, 2, 5)
    assert revision_changes([(before, facts(revision=2))], in_force) == []
