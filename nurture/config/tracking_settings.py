"""``config/tracking.yaml``: how the website tracker's data is kept and guarded (operator
knobs of the HTTP service; the lead workflows never see them)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from limits import parse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from nurture.config.config_loader import ConfigError, read_settings_file
from nurture.domain.durations import Duration
from nurture.store.ip_places import IpDatabaseError, MaxMindPlaces, from_settings

TRACKING_FILE = "tracking.yaml"


class RateLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    per_visitor: str = Field(
        default="120/minute", description="tracking calls one visitor may make (limits' syntax)"
    )
    per_ip: str = Field(
        default="1200/minute",
        description="tracking calls from one IP address (offices share one: keep it high)",
    )
    forms_per_ip: str = Field(default="20/hour", description="form posts from one IP address")

    @field_validator("per_visitor", "per_ip", "forms_per_ip")
    @classmethod
    def _a_limit(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError:
            raise ValueError(
                f"not a rate limit: {value!r}; write e.g. 120/minute or 20 per hour"
            ) from None
        return value


class TrackingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_anonymous_visits: Duration = Field(
        default=timedelta(days=90),
        description="how long events of visitors no lead is known for are kept",
    )
    visits_per_visitor: int = Field(
        default=1000, ge=10, le=4000, description="events kept per anonymous visitor"
    )
    rate_limits: RateLimits = RateLimits()
    ip_database: Path | None = Field(
        default=None,
        description="a MaxMind-format database (GeoLite2 City, ASN, or a company database)",
    )
    asn_database: Path | None = Field(
        default=None, description="a second one for network organisations (GeoLite2 ASN)"
    )
    keep_full_ip: bool = Field(
        default=False, description="keep IP addresses whole (default: last octet zeroed)"
    )


def load_tracking_settings(config_dir: Path) -> TrackingSettings:
    """The settings of ``config_dir/tracking.yaml`` (defaults when it is missing); relative
    database paths are read from the config dir. :class:`ConfigError` when a configured IP
    database is missing or not a MaxMind DB, so the service refuses to start with it."""
    file = config_dir / TRACKING_FILE
    settings = read_settings_file(file, TrackingSettings)
    paths = {
        name: config_dir / path
        for name in ("ip_database", "asn_database")
        if (path := getattr(settings, name)) is not None and not path.is_absolute()
    }
    settings = settings.model_copy(update=paths) if paths else settings
    try:
        opened = from_settings(settings)
    except IpDatabaseError as exc:
        raise ConfigError([f"{file}: {exc}"]) from None
    if isinstance(opened, MaxMindPlaces):  # opened to try them: the service opens its own
        opened.close()
    return settings
