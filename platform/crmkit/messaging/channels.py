"""Channels: how a rendered message reaches a person.

``email`` speaks SMTP (smtplib); ``sms`` and ``wechat`` (WeCom) post JSON to
a gateway URL from the environment, signed like webhooks, so any SMS vendor
or WeCom bridge can sit behind them. ``in_app`` is the platform's own (a row
in the notifications table, crmkit.messaging.store) and is not a channel
object. A plugin adds a channel, or replaces one of these, by returning
objects with the same shape from the ``crmkit_channels`` hook.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr
from typing import Protocol, runtime_checkable

from .settings import MessagingSettings
from .templates import Recipient

SENT, FAILED, NOT_SENT = "sent", "failed", "not_sent"
NO_GATEWAY = "no gateway"
IN_APP = "in_app"
#: The header carrying the HMAC-SHA256 of a request's body (gateways and webhooks).
SIGNATURE_HEADER = "X-Crmkit-Signature"
DELIVERY_HEADER = "X-Crmkit-Delivery"


@dataclass(frozen=True)
class Outgoing:
    """One rendered message for one recipient, at the address the channel chose."""

    channel: str
    address: str
    recipient: Recipient
    subject: str
    body: str
    language: str
    #: The idempotency key of this delivery (a gateway may use it to drop a repeat).
    key: str = ""


@dataclass(frozen=True)
class Delivery:
    """What became of a message: sent, failed (``error`` says why) or not_sent."""

    status: str
    error: str = ""


@runtime_checkable
class Channel(Protocol):
    """What the ``crmkit_channels`` hook returns (structurally: no base class needed)."""

    #: The name templates and ``send`` actions use.
    name: str

    def address(self, recipient: Recipient) -> str | None:
        """Where this channel reaches the recipient (an email address, a mobile), or None."""
        ...

    def configured(self) -> bool:
        """Whether it has what it needs to send (a server, a gateway)."""
        ...

    def deliver(self, message: Outgoing) -> Delivery:
        """Send the message; a failure is returned as a Delivery, never raised."""
        ...


def sign(secret: str | None, body: bytes) -> str | None:
    """``sha256=<hex>``: the HMAC-SHA256 of a body under the secret (None without one)."""
    if not secret:
        return None
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_json(url: str, payload: object, *, secret: str | None, timeout: float, key: str = "",
              method: str = "POST") -> tuple[int, str]:
    """POST (or PUT, PATCH) a JSON body, signed; (status, a short excerpt of the answer).
    Raises OSError (urllib's errors among them) when the request fails."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "crmkit"}
    signature = sign(secret, body)
    if signature:
        headers[SIGNATURE_HEADER] = signature
    if key:
        headers[DELIVERY_HEADER] = key
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(500).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(500).decode("utf-8", "replace") if exc.fp else ""


class EmailChannel:
    """Email over SMTP (plain, STARTTLS or SSL), one session per message."""

    name = "email"

    def __init__(self, settings: MessagingSettings) -> None:
        self.settings = settings

    def address(self, recipient: Recipient) -> str | None:
        return recipient.email or None

    def configured(self) -> bool:
        return self.settings.smtp is not None

    def deliver(self, message: Outgoing) -> Delivery:
        smtp = self.settings.smtp
        if smtp is None:
            return Delivery(NOT_SENT, NO_GATEWAY)
        email = EmailMessage()
        email["From"] = smtp.sender
        email["To"] = formataddr((message.recipient.name, message.address)) if message.recipient.name \
            else message.address
        email["Subject"] = message.subject
        if message.key:
            email["X-Crmkit-Delivery"] = message.key
        email.set_content(message.body)
        try:
            if smtp.security == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=self.settings.timeout,
                                                        context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(smtp.host, smtp.port, timeout=self.settings.timeout)
            with client:
                if smtp.security == "starttls":
                    client.starttls(context=ssl.create_default_context())
                if smtp.user:
                    client.login(smtp.user, smtp.password or "")
                client.send_message(email)
        except (OSError, smtplib.SMTPException) as exc:
            return Delivery(FAILED, f"SMTP: {type(exc).__name__}: {exc}"[:500])
        return Delivery(SENT)


class GatewayChannel:
    """A message posted as JSON to a gateway (an SMS vendor's bridge, a WeCom
    app's bridge): ``{"channel", "to", "name", "subject", "body", "language",
    "key"}``, signed with CRMKIT_WEBHOOK_SECRET. A 2xx answer is sent."""

    def __init__(self, name: str, url: str | None, settings: MessagingSettings) -> None:
        self.name = name
        self.url = url
        self.settings = settings

    def address(self, recipient: Recipient) -> str | None:
        return recipient.mobile or None

    def configured(self) -> bool:
        return bool(self.url)

    def deliver(self, message: Outgoing) -> Delivery:
        if not self.url:
            return Delivery(NOT_SENT, NO_GATEWAY)
        payload = {"channel": self.name, "to": message.address, "name": message.recipient.name,
                   "username": message.recipient.username, "subject": message.subject, "body": message.body,
                   "language": message.language, "key": message.key}
        try:
            status, answer = post_json(self.url, payload, secret=self.settings.webhook_secret,
                                       timeout=self.settings.timeout, key=message.key)
        except OSError as exc:
            return Delivery(FAILED, f"gateway: {type(exc).__name__}: {exc}"[:500])
        if not 200 <= status < 300:
            return Delivery(FAILED, f"gateway answered {status}: {answer}"[:500])
        return Delivery(SENT)


def builtin_channels(settings: MessagingSettings) -> list[Channel]:
    return [EmailChannel(settings), GatewayChannel("sms", settings.sms_gateway_url, settings),
            GatewayChannel("wechat", settings.wechat_gateway_url, settings)]
