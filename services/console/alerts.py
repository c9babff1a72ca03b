"""Alertmanager's webhook on the console: `POST /api/v1/alerts/alertmanager`.

Alertmanager posts its webhook JSON (version 4) to a receiver's `webhook_configs` URL, with
the bearer token its `http_config` names (deploy/alertmanager/alertmanager.yml). When
`LockgateUpdateFailureRateHigh` (deploy/prometheus/rules/lockgate.yml) fires for an update
(its `update` label: a KB number), the console asks the approval service to pause that
update fleet-wide (`approval.update.pause.v1`, requested by `alert:<alertname>`, the reason
naming the alert), which publishes `approval.update.paused.v1`; the audit log keeps the call
with the token that made it. A resolved alert never resumes: an operator does
(`lockgate updates resume`). Other alerts are accepted and ignored, and the reply says what
was done with each alert.

The token needs the admin role, as every write does (services/console/auth.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from libs.bus import BrokerUnavailable, RpcClient, RpcError, RpcTimeout, ServiceUnavailable
from libs.bus.codec import describe_validation_error
from libs.contracts import approval as a
from libs.contracts.api import PREFIX
from services.console import auth

PATH = f"{PREFIX}/alerts/alertmanager"
COMMAND = "console.alertmanager.notify"
"""What the audit log calls a webhook call."""

PAUSING_ALERTS = frozenset({"LockgateUpdateFailureRateHigh"})
"""Alerts that pause the update named by their `update` label when they fire."""
UPDATE_LABEL = "update"
RETRY_AFTER_SECONDS = 30
MAX_ALERTS = 64
"""Alerts one payload may carry; the receiver sets `max_alerts` to the same (its alerts are
grouped by update, so a notification carries one per update)."""


class AlertmanagerAlert(BaseModel):
    """One alert of Alertmanager's webhook payload (fields Lockgate does not read are
    accepted and ignored)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: Literal["firing", "resolved"] = Field(description="`firing` or `resolved`.")
    labels: dict[str, str] = Field(
        description="The alert's labels: `alertname`, and for Lockgate's update alerts "
        "`update` (a KB number or update id)."
    )
    annotations: dict[str, str] = Field(
        default_factory=dict, description="`summary`, `description`, ..."
    )
    starts_at: AwareDatetime | None = Field(
        default=None, alias="startsAt", description="When it started firing."
    )
    ends_at: AwareDatetime | None = Field(
        default=None, alias="endsAt", description="When it resolved (or will be deemed to)."
    )
    fingerprint: str = Field(default="", description="Alertmanager's id of the alert.")


class AlertmanagerPayload(BaseModel):
    """Alertmanager's webhook JSON (version 4)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: Literal["4"] = Field(description="The payload's version: `4` only.")
    status: Literal["firing", "resolved"] = Field(description="The group's status.")
    receiver: str = Field(default="", description="The receiver that sent it.")
    group_key: str = Field(default="", alias="groupKey", description="The group's key.")
    alerts: list[AlertmanagerAlert] = Field(
        max_length=MAX_ALERTS,
        description=f"The alerts of the group (at most {MAX_ALERTS}: the receiver's "
        "`max_alerts`, deploy/alertmanager/alertmanager.yml).",
    )


Done = Literal["paused", "already_paused", "ignored", "refused"]


class AlertOutcome(BaseModel):
    """What the console did with one alert."""

    alertname: str | None = Field(description="The alert's `alertname` label.")
    status: Literal["firing", "resolved"] = Field(description="The alert's status.")
    update: str | None = Field(description="Its `update` label, if any.")
    done: Done = Field(
        description="`paused` (the update is now paused fleet-wide), `already_paused` "
        "(it was: nothing changed), `ignored` (not an alert that pauses, or resolved: "
        "resolving never resumes) or `refused` (the approval service refused, e.g. an "
        "unknown update)."
    )
    detail: str = Field(description="Why, in words.")


class AlertsHandled(BaseModel):
    """The webhook's reply: one outcome per alert, in the order sent."""

    received: int = Field(description="Alerts in the payload.")
    outcomes: list[AlertOutcome] = Field(description="What was done with each.")


def pause_request(alert: AlertmanagerAlert, name: str, update: str) -> a.PauseUpdate:
    """The fleet-wide pause a firing alert asks for; its reason names the alert."""
    since = "" if alert.starts_at is None else f" since {alert.starts_at.isoformat()}"
    summary = alert.annotations.get("summary", "").strip()
    reason = f"alert {name} fired for {update}{since}" + (f": {summary}" if summary else "")
    return a.PauseUpdate(update=update, reason=reason[:500], requested_by=f"alert:{name}")


def triage(alert: AlertmanagerAlert) -> AlertOutcome | a.PauseUpdate:
    """An alert's outcome when nothing is to be done, else the pause to ask for."""
    name = alert.labels.get("alertname")
    update = alert.labels.get(UPDATE_LABEL)

    def outcome(done: Done, detail: str) -> AlertOutcome:
        return AlertOutcome(
            alertname=name, status=alert.status, update=update, done=done, detail=detail
        )

    if name not in PAUSING_ALERTS:
        return outcome("ignored", f"alert {name!r} is not one Lockgate acts on")
    if alert.status == "resolved":
        return outcome(
            "ignored",
            f"{name} resolved: a pause is lifted only by an operator (lockgate updates resume)",
        )
    if not update:
        return outcome("refused", f"{name} has no {UPDATE_LABEL!r} label naming the update")
    try:
        return pause_request(alert, name, update)
    except ValidationError as error:  # text a message may not carry (a NUL character...)
        return outcome(
            "refused", f"{name}: {describe_validation_error(error, a.PAUSE_UPDATE.type)}"
        )


async def handle(rpc: RpcClient, payload: AlertmanagerPayload) -> AlertsHandled:
    """Pause the update of each firing pausing alert; say what was done with each alert."""
    outcomes: list[AlertOutcome] = []
    for alert in payload.alerts:
        found = triage(alert)
        if isinstance(found, AlertOutcome):
            outcomes.append(found)
            continue
        name = alert.labels.get("alertname")
        try:
            result = await rpc.call(a.PAUSE_UPDATE, found)
        except RpcError as error:
            outcomes.append(
                AlertOutcome(
                    alertname=name,
                    status=alert.status,
                    update=found.update,
                    done="refused",
                    detail=f"{error.body.error}: {error.body.message}",
                )
            )
            continue
        except (RpcTimeout, ServiceUnavailable, BrokerUnavailable) as error:
            # Alertmanager retries a failed notification: nothing was lost.
            raise HTTPException(
                503,
                f"could not pause {found.update}: {error}",
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from None
        outcomes.append(
            AlertOutcome(
                alertname=name,
                status=alert.status,
                update=found.update,
                done="paused" if result.changed else "already_paused",
                detail=f"paused fleet-wide: {found.reason}"
                if result.changed
                else (result.note or "already paused"),
            )
        )
    return AlertsHandled(received=len(payload.alerts), outcomes=outcomes)


def mount(app: FastAPI, rpc: Callable[[], RpcClient]) -> None:
    """The webhook route (admin tokens only; 401 without a token)."""

    async def alertmanager(
        payload: AlertmanagerPayload, _: Annotated[auth.Caller, Depends(auth.admin)]
    ) -> AlertsHandled:
        return await handle(rpc(), payload)

    app.add_api_route(
        PATH,
        alertmanager,
        methods=["POST"],
        response_model=AlertsHandled,
        summary="Alertmanager's webhook: a firing LockgateUpdateFailureRateHigh pauses its "
        "update fleet-wide; resolved alerts never resume; other alerts are ignored.",
        tags=["alerts"],
        name="alertmanager_webhook",
    )
