"""Where messages go: the SMTP server, the SMS and WeCom gateways and the
webhook secret, from the environment (``CRMKIT_SMTP_*``, ``CRMKIT_*_GATEWAY_URL``,
``CRMKIT_WEBHOOK_SECRET``). Nothing is required: a channel without its
server or gateway records its messages as "not sent: no gateway"."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from ..settings import SettingsError

#: Seconds a delivery (an SMTP session, a gateway or webhook request) may take.
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    user: str | None = None
    password: str | None = None
    sender: str = "crmkit@localhost"
    #: "plain", "starttls" (upgrade after connecting) or "ssl" (smtps, port 465).
    security: str = "plain"


@dataclass(frozen=True)
class MessagingSettings:
    smtp: SmtpSettings | None = None
    sms_gateway_url: str | None = None
    wechat_gateway_url: str | None = None
    #: Signs webhook bodies and gateway requests (HMAC-SHA256); None: unsigned.
    webhook_secret: str | None = None
    timeout: float = DEFAULT_TIMEOUT


def smtp_from_url(url: str, sender: str | None = None) -> SmtpSettings:
    """``smtp://user:password@host:port?from=crm@example.com`` (``smtps://``
    for TLS from the start, ``smtp+starttls://`` to upgrade)."""
    parts = urlsplit(url)
    security = {"smtp": "plain", "smtps": "ssl", "smtp+starttls": "starttls"}.get(parts.scheme)
    if security is None or not parts.hostname:
        raise SettingsError(f"CRMKIT_SMTP_URL must look like smtp://user:password@host:port, not {url!r}")
    query = parse_qs(parts.query)
    try:
        port = parts.port or (465 if security == "ssl" else 25)
    except ValueError:
        raise SettingsError(f"CRMKIT_SMTP_URL has a port that is no number: {url!r}") from None
    return SmtpSettings(host=parts.hostname, port=port,
                        user=unquote(parts.username) if parts.username else None,
                        password=unquote(parts.password) if parts.password else None,
                        sender=sender or (query.get("from") or ["crmkit@localhost"])[0], security=security)


def from_environment(env: Mapping[str, str] | None = None) -> MessagingSettings:
    env = os.environ if env is None else env
    sender = env.get("CRMKIT_SMTP_FROM") or None
    smtp: SmtpSettings | None = None
    if env.get("CRMKIT_SMTP_URL"):
        smtp = smtp_from_url(env["CRMKIT_SMTP_URL"], sender)
    elif env.get("CRMKIT_SMTP_HOST"):
        port_text = env.get("CRMKIT_SMTP_PORT") or "25"
        if not port_text.isdigit():
            raise SettingsError(f"CRMKIT_SMTP_PORT must be a port number, not {port_text!r}")
        smtp = SmtpSettings(host=env["CRMKIT_SMTP_HOST"], port=int(port_text),
                            user=env.get("CRMKIT_SMTP_USER") or None, password=env.get("CRMKIT_SMTP_PASSWORD") or None,
                            sender=sender or "crmkit@localhost",
                            security="starttls" if env.get("CRMKIT_SMTP_STARTTLS", "").lower() in ("1", "true", "yes")
                            else "plain")
    timeout_text = env.get("CRMKIT_MESSAGE_TIMEOUT") or str(DEFAULT_TIMEOUT)
    try:
        timeout = float(timeout_text)
    except ValueError:
        raise SettingsError(f"CRMKIT_MESSAGE_TIMEOUT must be seconds, not {timeout_text!r}") from None
    return MessagingSettings(smtp=smtp, sms_gateway_url=env.get("CRMKIT_SMS_GATEWAY_URL") or None,
                             wechat_gateway_url=env.get("CRMKIT_WECHAT_GATEWAY_URL") or None,
                             webhook_secret=env.get("CRMKIT_WEBHOOK_SECRET") or None, timeout=timeout)
