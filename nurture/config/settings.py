"""How an engine process reaches the outside and what its workers run with, from the
environment: SendGrid (or its stand-in), the CRM, and a worker's options. Settings only: the
activities that use them live in ``activities/``; a key or secret never reaches a log line
(each ``__repr__`` hides it)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from nurture.access.consent import LinkSigner
from nurture.config.config_loader import config_dir_from_env, templates_dir_from_env
from nurture.config.rules_source import RulesSource
from nurture.contract.messages import TASK_QUEUE
from nurture.runtime.metrics import metrics_address_from_env
from nurture.store.db import database_url_from_env

SENDGRID_API = "https://api.sendgrid.com"


@dataclass(frozen=True)
class MailerSettings:
    api_key: str
    base_url: str

    @classmethod
    def from_env(cls) -> MailerSettings:
        """``SENDGRID_API_KEY`` (+ optional ``SENDGRID_BASE_URL``) for the real service;
        without a key, the local stand-in at ``NURTURE_SENDGRID_URL``."""
        key = os.environ.get("SENDGRID_API_KEY")
        if key:
            return cls(api_key=key, base_url=os.environ.get("SENDGRID_BASE_URL", SENDGRID_API))
        return cls.standin(os.environ.get("NURTURE_SENDGRID_URL", "http://127.0.0.1:3030"))

    @classmethod
    def standin(cls, base_url: str) -> MailerSettings:
        """The local SendGrid stand-in: any non-empty key is accepted there."""
        return cls(api_key="SG.local-standin", base_url=base_url)

    def __repr__(self) -> str:  # never let the key reach a log line
        return f"MailerSettings(base_url={self.base_url!r}, api_key='***')"


@dataclass(frozen=True)
class CrmSettings:
    """``NURTURE_CRM_URL`` (instance or login URL) and either ``NURTURE_CRM_CLIENT_ID`` +
    ``NURTURE_CRM_CLIENT_SECRET`` (OAuth client credentials) or ``NURTURE_CRM_TOKEN``."""

    base_url: str
    client_id: str | None = None
    client_secret: str | None = None
    token: str | None = None
    api_version: str = "v60.0"

    @classmethod
    def from_env(cls) -> CrmSettings | None:
        url = os.environ.get("NURTURE_CRM_URL")
        if not url:
            return None
        return cls(
            base_url=url.rstrip("/"),
            client_id=os.environ.get("NURTURE_CRM_CLIENT_ID") or None,
            client_secret=os.environ.get("NURTURE_CRM_CLIENT_SECRET") or None,
            token=os.environ.get("NURTURE_CRM_TOKEN") or None,
        )

    def __repr__(self) -> str:
        return (
            f"CrmSettings(base_url={self.base_url!r}, client_id={self.client_id!r}, secret='***')"
        )


@dataclass
class WorkerOptions:
    config_dir: Path = field(default_factory=config_dir_from_env)
    templates_dir: Path = field(default_factory=templates_dir_from_env)
    database_url: str = field(default_factory=database_url_from_env)
    mailer: MailerSettings = field(default_factory=MailerSettings.from_env)
    signer: LinkSigner = field(default_factory=LinkSigner.from_env)
    crm: CrmSettings | None = field(default_factory=CrmSettings.from_env)
    time_scale: float = 1.0
    task_queue: str = TASK_QUEUE
    max_cached_workflows: int = 2000
    activity_threads: int = 32
    gc_young_threshold: int = 10_000
    gc_freeze: bool = False
    """Leave the objects start-up built out of later garbage collections (``gc.freeze``)."""
    metrics_address: str | None = field(default_factory=metrics_address_from_env)
    """Where the worker serves Prometheus metrics (``nurture.runtime.metrics``); None: nowhere."""

    def rules_source(self) -> RulesSource:
        """Load the rules (every template rendered against sample leads): a broken config or
        template raises ``ConfigError`` here, at start, with file, line and variable, instead
        of failing a lead. Build it before connecting to Temporal."""
        return RulesSource(self.config_dir, self.templates_dir, self.time_scale)
