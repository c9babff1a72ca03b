"""Settings model: every knob a Lockgate process reads, with development defaults."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import AwareDatetime, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.contracts.names import SERVICE_NAMES, ServiceName
from libs.domain.content_urls import MIN_KEY_BYTES, ContentLinks

__all__ = ["SERVICE_NAMES", "ContentSigningKeyMissing", "ServiceName", "Settings"]

LogLevel = Literal["debug", "info", "warning", "error"]

DEVELOPMENT_CONTENT_KEY = b"lockgate development content signing key: not a secret"
"""Signs content URLs only while LOCKGATE_CONTENT_URL is a loopback address (`make run`, the
tests): such URLs reach no other machine. Any other content URL needs a real key."""
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ContentSigningKeyMissing(ValueError):
    """Content URLs would be signed with no (or a too short) secret where agents reach them."""


class Settings(BaseSettings):
    """Settings shared by every Lockgate process; each is read from `LOCKGATE_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="LOCKGATE_", extra="ignore", frozen=True)

    amqp_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/",
        description="RabbitMQ URL, vhost included (amqp://user:password@host:port/vhost).",
    )
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/lockgate",
        description="PostgreSQL URL of the database holding every service's schema; several "
        "hosts follow a failover: postgresql://user@h1:5432,h2:5432/lockgate"
        "?target_session_attrs=read-write.",
    )
    database_command_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long one database statement may take before it fails as a timeout "
        "(the message waits for the database and runs again; it is not dead-lettered).",
    )
    database_connect_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long opening one database connection may take (per host of a "
        "multi-host URL) before it counts as the database not answering.",
    )
    log_level: LogLevel = Field(default="info", description="Lowest level of log events written.")
    http_host: str = Field(
        default="127.0.0.1", description="Address the metrics/health HTTP server listens on."
    )
    catalog_http_port: int = Field(
        default=8081, ge=0, le=65535, description="catalog's /metrics, /healthz, /readyz port."
    )
    approval_http_port: int = Field(
        default=8082, ge=0, le=65535, description="approval's /metrics, /healthz, /readyz port."
    )
    scheduler_http_port: int = Field(
        default=8083, ge=0, le=65535, description="scheduler's /metrics, /healthz, /readyz port."
    )
    reporting_http_port: int = Field(
        default=8084, ge=0, le=65535, description="reporting's /metrics, /healthz, /readyz port."
    )
    console_port: int = Field(
        default=8080, ge=0, le=65535, description="Port of the operators' console HTTP API."
    )
    console_session_hours: int = Field(
        default=12,
        ge=1,
        le=720,
        description="Console: hours a browser session (sign-in with an API token, "
        "POST /api/v1/session) lasts; never beyond the token's own expiry.",
    )
    bootstrap_token: SecretStr | None = Field(
        default=None,
        description="First admin API token (else one is generated and printed once at the "
        "console's first start).",
    )
    url: str = Field(
        default="http://127.0.0.1:8080", description="Where the CLI finds the console API."
    )
    token: SecretStr | None = Field(default=None, description="API token the CLI sends.")
    prefetch: int = Field(
        default=64, ge=1, le=10_000, description="Unacked messages a consumer may hold at once."
    )
    delivery_limit: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Deliveries of one message before it is dead-lettered to <queue>.dlq.",
    )
    publish_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long a publisher confirm may take before failing."
    )
    rpc_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long an RPC caller waits for a reply."
    )
    outbox_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="Outbox relay polling interval, the fallback when no NOTIFY arrives.",
    )
    outbox_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="Outbox rows the relay publishes per batch."
    )
    heartbeat_seconds: float = Field(
        default=15.0, gt=0, description="Interval between a service's heartbeat events."
    )
    batch_wait_seconds: float = Field(
        default=0.05,
        gt=0,
        description="Bulk handlers: how long a batch waits to fill before it is committed.",
    )
    batch_size: int = Field(
        default=100,
        ge=1,
        le=3000,
        description="Bulk handlers (agent reports, check-ins): messages committed together at "
        "most; their queue's prefetch is at least three batches, so one batch commits while "
        "the next is read.",
    )
    compliance_publish_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Reporting: at most one compliance.changed event per update this often.",
    )
    compliance_sample_seconds: float = Field(
        default=300.0,
        ge=1,
        description="Reporting: how often the fleet's headline counts (the overview's totals, "
        "managed and not reporting computers) are kept as a point of the compliance history; "
        "one point per interval, whichever replica takes it.",
    )
    compliance_history_days: float = Field(
        default=90.0,
        gt=0,
        le=3650,
        description="Reporting: points of the compliance history older than this many days "
        "are deleted.",
    )
    report_group_depth: int = Field(
        default=1,
        ge=0,
        le=3,
        description="Reporting: Prometheus gauges per group for groups this deep or less "
        "(All computers is 0); bounded so label counts stay small.",
    )
    not_reporting_days: float = Field(
        default=7.0,
        gt=0,
        le=3650,
        description="Reporting: a computer with no check-in or report for this many days is "
        "not reporting; it is counted apart (not_reporting), never as failed or needed.",
    )
    report_update_limit: int = Field(
        default=200,
        ge=0,
        le=5000,
        description="Reporting: Prometheus gauges per update (lockgate_update_computers) for at "
        "most this many approved updates, those with the most computers needing them first.",
    )
    metrics_sample_seconds: float = Field(
        default=15.0,
        gt=0,
        description="How often services sample gauges from the broker and their database "
        "(queue depth and consumers, timers due, restarts pending, catalog storage).",
    )
    dead_letter_keeper: bool = Field(
        default=True,
        description="Console: take every <queue>.dlq into the console's dead-letter store "
        "(lockgate dlq, /api/v1/dead-letters); off, dead letters stay in the broker's queues.",
    )
    clock_speed: float = Field(
        default=1.0,
        ge=1,
        le=100_000,
        description="Demos and end-to-end tests only: time runs this many times faster.",
    )
    clock_epoch: AwareDatetime | None = Field(
        default=None,
        description="With clock_speed: the instant the faster time starts from (the same in "
        "every process).",
    )
    timer_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often the scheduler looks for due timers."
    )
    timer_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="Due timers one transaction claims and fires."
    )
    planner_poll_seconds: float = Field(
        default=0.5, gt=0, description="How often the scheduler recomputes plans marked dirty."
    )
    rollout_poll_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often approval measures the gates of rollouts whose delay is over.",
    )
    content_dir: str = Field(
        default="var/content",
        description="Directory of the catalog's content store (uploaded installers, by sha256).",
    )
    content_signing_key: SecretStr | None = Field(
        default=None,
        description="Secret (at least 32 bytes) signing content download URLs; the same in "
        "every scheduler and console replica. Unset: a fixed development key, allowed only "
        "while LOCKGATE_CONTENT_URL is a loopback address; otherwise the scheduler and the "
        "console refuse to start.",
    )
    content_url: str = Field(
        default="http://127.0.0.1:8080",
        description="Base URL agents download content from (the console, or a CDN or HTTP "
        "cache in front of it): signed URLs are `<this>/content/<sha256>/<file>?...`.",
    )
    content_url_days: int = Field(
        default=7,
        ge=1,
        le=365,
        description="Days a signed content URL stays valid (rounded up to a UTC midnight); "
        "every plan carries fresh ones.",
    )
    storage_quota_bytes: int = Field(
        default=10 * 1024**3, ge=0, description="Tenant storage quota for uploaded content."
    )
    upload_expiry_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 365,
        description="An upload not committed and with no activity (no chunk, no step answered) "
        "for this many hours expires: its bytes are dropped and its quota freed.",
    )
    upload_sweep_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How often the catalog expires abandoned uploads and sweeps the content "
        "store (finishes moves a crash interrupted, removes files no row refers to).",
    )
    content_grace_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="The content sweeper removes temporary files and content no row refers "
        "to only once they are older than this (an upload being committed is never swept).",
    )
    installer_probe_cpu_seconds: int = Field(
        default=10,
        ge=1,
        le=600,
        description="CPU seconds the child process reading an uploaded installer's metadata "
        "may use (RLIMIT_CPU); past it the upload is refused as not a valid installer.",
    )
    installer_probe_memory_mb: int = Field(
        default=512,
        ge=64,
        le=65_536,
        description="Memory in MiB the child process reading an uploaded installer's metadata "
        "may allocate (RLIMIT_AS, on top of the installer's own mapped size); past it the "
        "upload is refused as not a valid installer.",
    )
    installer_probe_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Wall-clock seconds the catalog waits for the child process reading an "
        "installer's metadata before killing it and refusing the upload.",
    )
    shutdown_grace_seconds: float = Field(
        default=20.0, gt=0, description="On SIGTERM, how long in-flight work may take to finish."
    )

    def content_links(self) -> ContentLinks:
        """How content URLs are signed here; raises ContentSigningKeyMissing when no key is set
        (or it is too short) and the content URL is not a loopback address."""
        if self.content_signing_key is not None:
            key = self.content_signing_key.get_secret_value().encode()
            if len(key) < MIN_KEY_BYTES:
                raise ContentSigningKeyMissing(
                    f"LOCKGATE_CONTENT_SIGNING_KEY is {len(key)} bytes long; it must be at least "
                    f"{MIN_KEY_BYTES} (for example: openssl rand -base64 48)"
                )
        elif (urlsplit(self.content_url).hostname or "") in _LOOPBACK:
            key = DEVELOPMENT_CONTENT_KEY
        else:
            raise ContentSigningKeyMissing(
                "LOCKGATE_CONTENT_SIGNING_KEY is not set, and LOCKGATE_CONTENT_URL "
                f"({self.content_url}) is not a loopback address: set the same secret of at "
                f"least {MIN_KEY_BYTES} bytes on every scheduler and console (for example: "
                "openssl rand -base64 48); the development key is only for 127.0.0.1"
            )
        return ContentLinks(key=key, base_url=self.content_url, days=self.content_url_days)

    def http_port(self, service: ServiceName) -> int:
        """The metrics/health port of one service."""
        ports: dict[ServiceName, int] = {
            "catalog": self.catalog_http_port,
            "approval": self.approval_http_port,
            "scheduler": self.scheduler_http_port,
            "reporting": self.reporting_http_port,
        }
        return ports[service]
