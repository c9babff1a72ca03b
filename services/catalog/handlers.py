"""catalog's handler table: every message the service reacts to, and the use case it calls."""

from __future__ import annotations

from pathlib import Path

from libs.contracts import catalog as c
from libs.contracts import uploads as u
from libs.contracts.system import PING
from libs.observability import metrics
from libs.service import Answer, Every, ServiceDefinition, TaskContext
from libs.service.system import answer_ping
from services.catalog import store
from services.catalog.use_cases import (
    content,
    importing,
    settings,
    third_party,
    updates,
    uploads,
)


async def sample_gauges(task: TaskContext) -> None:
    """Updates by state and storage used, for Prometheus."""
    async with task.pool.acquire() as conn:
        states = await store.updates.update_states(conn)
        used = await store.uploads.used_bytes(conn)
    for state in ("active", "superseded", "expired"):
        metrics.CATALOG_UPDATES.labels(state).set(states.get(state, 0))
    metrics.CATALOG_STORAGE_BYTES.set(used)
    metrics.CATALOG_STORAGE_QUOTA_BYTES.set(task.settings.storage_quota_bytes)


SERVICE = ServiceDefinition(
    name="catalog",
    migrations=Path(__file__).parent / "migrations",
    events=(),
    commands=(
        Answer(PING["catalog"], answer_ping),
        Answer(c.IMPORT_DOCUMENT, importing.import_document),
        Answer(c.LIST_IMPORTS, importing.list_imports),
        Answer(c.GET_UPDATE, updates.get_update),
        Answer(c.LIST_UPDATES, updates.list_updates),
        Answer(c.EXPIRE_UPDATE, updates.expire_update),
        Answer(c.GET_SETTINGS, settings.get_settings),
        Answer(c.CHANGE_SETTINGS, settings.change_settings),
        Answer(u.START_UPLOAD, uploads.start_upload),
        Answer(u.SEND_CHUNK, uploads.send_chunk),
        Answer(u.DESCRIBE, uploads.describe),
        Answer(u.SET_REQUIREMENTS, uploads.set_requirements),
        Answer(u.SET_DETECTION, uploads.set_detection),
        Answer(u.SET_PREREQUISITES, uploads.set_prerequisites),
        Answer(u.SET_COMMAND_LINE, uploads.set_command_line),
        Answer(u.SET_RETURN_CODES, uploads.set_return_codes),
        Answer(u.GET_UPLOAD, uploads.get_upload),
        Answer(u.LIST_UPLOADS, uploads.list_uploads),
        Answer(u.COMMIT_UPLOAD, uploads.commit_upload),
        Answer(u.CANCEL_UPLOAD, uploads.cancel_upload),
        Answer(u.EDIT_UPDATE, third_party.edit_update),
        Answer(u.DELETE_UPDATE, third_party.delete_update),
    ),
    tasks=(
        Every("gauges", lambda s: s.metrics_sample_seconds, sample_gauges),
        Every("upload-expiry", lambda s: s.upload_sweep_seconds, uploads.expire_abandoned),
        Every("content-sweep", lambda s: s.upload_sweep_seconds, content.sweep),
    ),
)
