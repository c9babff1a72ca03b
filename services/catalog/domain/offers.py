"""Which updates the catalog settings offer to computers (docs/product.md section 2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from libs.contracts.catalog import CatalogSettings, Origin, UpdateOfferChanged


@dataclass(frozen=True)
class SettingsInForce:
    """The catalog settings and their version: every change adds one, so a decision made
    under them can be ordered against another (see UpdateSnapshot.settings_version)."""

    settings: CatalogSettings
    version: int


@dataclass(frozen=True)
class Offer:
    """Whether an update is offered to computers, and why in words."""

    offered: bool
    reason: str


@dataclass(frozen=True)
class OfferFacts:
    """What the offer of one update depends on, with what names it in events."""

    update_id: str
    kb: str | None
    title: str
    origin: Origin
    revision: int
    classification: str
    product_families: Sequence[str]


THIRD_PARTY_REASON = (
    "third-party updates are always offered: the catalog settings choose Microsoft updates "
    "only, and uploading an update is the operator's choice to offer it"
)


def _names(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "none"


def offer_of(
    origin: Origin, classification: str, product_families: Sequence[str], settings: CatalogSettings
) -> Offer:
    """An update is offered when its classification is an offered one and at least one of
    its product categories is offered. The settings choose among Microsoft updates only:
    a third-party update is always offered (the operator chose it by uploading it)."""
    if origin == "third_party":
        return Offer(offered=True, reason=THIRD_PARTY_REASON)
    wanted = set(settings.products)
    matching = sorted(family for family in product_families if family in wanted)
    problems: list[str] = []
    if classification not in settings.classifications:
        problems.append(
            f"its classification {classification} is not offered (offered classifications: "
            f"{_names(settings.classifications)})"
        )
    if not matching:
        which = "category" if len(product_families) == 1 else "categories"
        problems.append(
            f"its product {which} {_names(sorted(product_families))} "
            f"{'is' if len(product_families) == 1 else 'are'} not offered "
            f"(offered products: {_names(settings.products)})"
        )
    if problems:
        return Offer(offered=False, reason="; ".join(problems))
    which = "category" if len(matching) == 1 else "categories"
    return Offer(
        offered=True,
        reason=f"its classification {classification} and product {which} "
        f"{', '.join(matching)} are offered",
    )


def offer_for(facts: OfferFacts, settings: CatalogSettings) -> Offer:
    return offer_of(facts.origin, facts.classification, facts.product_families, settings)


def offer_changes(
    updates: Sequence[OfferFacts], before: CatalogSettings, after: SettingsInForce
) -> list[UpdateOfferChanged]:
    """One event body per update the new settings offer or withdraw (the others keep their
    state and are not named)."""
    changed: list[UpdateOfferChanged] = []
    for facts in updates:
        now = offer_for(facts, after.settings)
        if now.offered != offer_for(facts, before).offered:
            changed.append(offer_changed(facts, now, after.version))
    return changed


def revision_changes(
    revised: Sequence[tuple[OfferFacts, OfferFacts]], in_force: SettingsInForce
) -> list[UpdateOfferChanged]:
    """One event body per (before, after) revision that moves the update into or out of what
    the settings offer (a classification or its products changed)."""
    changed: list[UpdateOfferChanged] = []
    for before, after in revised:
        now = offer_for(after, in_force.settings)
        if now.offered != offer_for(before, in_force.settings).offered:
            changed.append(offer_changed(after, now, in_force.version))
    return changed


def offer_changed(facts: OfferFacts, offer: Offer, settings_version: int) -> UpdateOfferChanged:
    """The event body saying an update is now offered or withdrawn."""
    return UpdateOfferChanged(
        update_id=facts.update_id,
        kb=facts.kb,
        title=facts.title,
        offered=offer.offered,
        reason=offer.reason,
        revision=facts.revision,
        settings_version=settings_version,
    )
