"""catalog's storage (schema `catalog` only, and the content store), one module per aggregate."""

from services.catalog.store import content, packages, settings, updates, uploads

__all__ = ["content", "packages", "settings", "updates", "uploads"]
