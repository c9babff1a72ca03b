"""catalog's storage (schema `catalog` only, and the content store), one module per aggregate."""

from services.catalog.store import content, imports, packages, settings, updates, uploads

__all__ = ["content", "imports", "packages", "settings", "updates", "uploads"]
