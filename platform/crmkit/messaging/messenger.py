"""The face of messaging that automations call: send a template to the
recipients of a record, notify users in the app, call a webhook.

One Messenger per runtime (``Runtime.messaging``). Each delivery has an
effect key (the action's key, the channel and the recipient), so a job run
again after a crash or a failure sends only what was not sent
(crmkit.messaging.store). What was sent, failed or could not be sent lands
in the messages table with the automation and the record.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pluggy
import sqlalchemy as sa

from ..jobs import PermanentFailure
from ..metadata.spec import AppSpec, TemplateSpec, label_text
from ..plugins import PluginError, startup_results
from .channels import FAILED, IN_APP, NO_GATEWAY, NOT_SENT, SENT, Channel, Outgoing, post_json
from .recipients import RecipientFinder
from .settings import MessagingSettings, from_environment
from .store import MessageStore, Origin
from .templates import Recipient, render, row_reader

log = logging.getLogger("crmkit.messaging")


class DeliveryFailed(RuntimeError):
    """Some deliveries failed (recorded as failed): raised after the others
    were made, so the job queue runs the action again; what was sent is not
    sent twice (effect keys)."""


class RefusedDelivery(DeliveryFailed, PermanentFailure):
    """The receiver refused the request for good (a 4xx answer other than
    timeout and rate limits): retrying the same body cannot help, so the job
    goes to the dead-letter list at once (an admin may replay it after fixing
    the receiver)."""


#: 4xx answers that may succeed later: a timeout, "too early", rate limits.
RETRYABLE_4XX = frozenset({408, 425, 429})


@dataclass
class Report:
    """What one action did, for the run log."""

    what: str
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    not_sent: list[str] = field(default_factory=list)
    repeated: int = 0
    no_address: list[str] = field(default_factory=list)

    def line(self) -> str:
        parts = [f"{self.what}: {len(self.sent)} sent"]
        if self.sent:
            parts[0] += f" ({', '.join(self.sent[:5])}{'…' if len(self.sent) > 5 else ''})"
        if self.repeated:
            parts.append(f"{self.repeated} already sent by an earlier run")
        if self.not_sent:
            parts.append(f"{len(self.not_sent)} not sent: {NO_GATEWAY}")
        if self.no_address:
            parts.append(f"{len(self.no_address)} without an address ({', '.join(self.no_address[:5])})")
        if self.failed:
            parts.append(f"{len(self.failed)} failed ({'; '.join(self.failed[:3])})")
        if not (self.sent or self.repeated or self.not_sent or self.no_address or self.failed):
            parts.append("nobody to send to")
        return ", ".join(parts)


def load_channels(pm: pluggy.PluginManager, settings: MessagingSettings) -> dict[str, Channel]:
    """The channels of the crmkit_channels hook, by name; a plugin registered
    later replaces a channel of the same name (the built-in ones come first)."""
    channels: dict[str, Channel] = {}
    for plugin, contributed in reversed(startup_results(pm, "crmkit_channels", settings=settings)):
        for channel in contributed or ():
            if not isinstance(channel, Channel) or not isinstance(getattr(channel, "name", None), str):
                raise PluginError(f"plugin '{plugin}' returned {channel!r} from crmkit_channels: a channel has a "
                                  "name and the methods address, configured and deliver")
            if channel.name == IN_APP:
                raise PluginError(f"plugin '{plugin}' cannot replace the in_app channel (the platform's own)")
            channels[channel.name] = channel
    return channels


#: The setting that gives each built-in channel its server or gateway.
GATEWAY_SETTINGS = {"email": "CRMKIT_SMTP_URL (or CRMKIT_SMTP_HOST)", "sms": "CRMKIT_SMS_GATEWAY_URL",
                    "wechat": "CRMKIT_WECHAT_GATEWAY_URL"}


def _without_gateway(spec: AppSpec, channels: Mapping[str, Channel]) -> list[tuple[str, str, list[str]]]:
    """The channels the config's templates use that have no server or gateway:
    (channel, the setting that would give it one, the templates that use it)."""
    used: dict[str, list[str]] = {}
    for template in spec.templates.values():
        used.setdefault(template.channel, []).append(template.name)
    return [(name, GATEWAY_SETTINGS.get(name, "its settings"), sorted(templates))
            for name, templates in sorted(used.items())
            if (channel := channels.get(name)) is not None and not channel.configured()]


def unconfigured(spec: AppSpec, channels: Mapping[str, Channel]) -> list[str]:
    """Warnings (``crmkit check``'s): each channel the config's templates use that has no server or gateway."""
    return [f"channel '{name}' has no gateway configured ({setting}): messages of the templates "
            f"{', '.join(templates)} will be recorded as 'not sent: {NO_GATEWAY}'"
            for name, setting, templates in _without_gateway(spec, channels)]


class Messenger:
    def __init__(self, rt: Any, settings: MessagingSettings | None = None,
                 channels: Mapping[str, Channel] | None = None) -> None:
        self.rt = rt
        self.settings = settings if settings is not None else from_environment()
        self.channels = dict(channels) if channels is not None else load_channels(rt.pm, self.settings)
        self.store = MessageStore(rt.engine, rt.tables.metadata, rt.queries)
        self._warned = False

    @property
    def spec(self) -> AppSpec:
        return self.rt.spec

    def channel_names(self) -> list[str]:
        return [IN_APP, *self.channels]

    def unconfigured(self) -> list[str]:
        """Warnings: the channels the config's templates use that have no server or gateway."""
        return unconfigured(self.spec, self.channels)

    def warn_once(self) -> None:
        """Log the unconfigured channels in one line, once per process (at
        start-up: a server's first lines are read, and the first admin's
        password is printed just before them); ``crmkit check`` names the templates."""
        if self._warned:
            return
        self._warned = True
        missing = _without_gateway(self.spec, self.channels)
        if missing:
            log.warning("no gateway configured for %s: their messages are recorded as 'not sent: %s' "
                        "(crmkit check names the templates)",
                        ", ".join(f"{name} ({setting})" for name, setting, _ in missing), NO_GATEWAY)

    def language(self, asked: str | None) -> str:
        locales = self.spec.locales
        return asked if asked in locales else (locales[0] if locales else "en")

    def language_for(self, recipient: Recipient, asked: str | None = None) -> str:
        """A message's language: the one the action gives, else the user's
        chosen one (a user recipient), else the app's default (a record's
        phone or email: a customer)."""
        return self.language(asked or recipient.language)

    # ------------------------------------------------------------ rendering

    def render(self, template: TemplateSpec, entity: str | None, record: Mapping[str, Any] | None,
               language: str, recipient: Recipient | None = None, conn: sa.Connection | None = None,
               approval: Mapping[str, Any] | None = None) -> tuple[str, str]:
        """(subject, body) of a template for a record, in a language."""
        if conn is None:
            with self.rt.engine.connect() as own:
                return self.render(template, entity, record, language, recipient, own, approval)
        read = row_reader(conn, self.rt)
        subject_text = label_text(template.subject, language) if template.subject else ""
        body_text = label_text(template.body, language)
        entity_name = entity or template.entity or ""
        subject = render(subject_text, self.spec, entity_name, record, read, language, recipient, approval) \
            if subject_text else ""
        body = render(body_text, self.spec, entity_name, record, read, language, recipient, approval)
        return subject, body

    # ------------------------------------------------------------ the actions

    def send(self, *, template: str, to: Any = "owner", entity: str | None, record: Mapping[str, Any] | None,
             key: str, automation: str | None = None, channel: str | None = None,
             language: str | None = None, approval: Mapping[str, Any] | None = None) -> Report:
        """Render ``template`` for the record and send it on its channel to each recipient."""
        spec = self.spec.templates[template]
        channel_name = channel or spec.channel
        if channel_name == IN_APP:
            return self.notify(to=to, entity=entity, record=record, key=key, automation=automation,
                               template=template, approval=approval)
        sender = self.channels.get(channel_name)
        report = Report(f"{channel_name} '{template}'")
        entity_spec = self.spec.entities.get(entity or "")
        origin = Origin(automation, entity, _record_id(record), template)
        with self.rt.engine.connect() as conn:
            recipients = RecipientFinder(self.rt, conn, approval).find(to, entity_spec, record, channel_name)
            languages = [self.language_for(r, language) for r in recipients]
            rendered = [(r, lang, *self.render(spec, entity, record, lang, r, conn, approval))
                        for r, lang in zip(recipients, languages, strict=True)]
        for recipient, lang, subject, body in rendered:
            address = sender.address(recipient) if sender is not None else None
            if not address:
                report.no_address.append(recipient.name)
                continue
            effect = f"{key}:{channel_name}:{address}"
            message_id = self.store.claim(effect, channel_name, address, origin)
            if message_id is None:
                report.repeated += 1
                continue
            assert sender is not None
            try:
                delivery = sender.deliver(Outgoing(channel_name, address, recipient, subject, body, lang, effect))
            except Exception as exc:  # noqa: BLE001 - a plugin's channel failing is a failed delivery
                delivery = _failed(exc)
            self.store.finish(message_id, status=delivery.status, error=delivery.error, subject=subject, body=body,
                              recipient_name=recipient.name, user_id=recipient.user_id)
            {SENT: report.sent, NOT_SENT: report.not_sent}.get(delivery.status, report.failed).append(
                recipient.name if delivery.status != FAILED else f"{recipient.name}: {delivery.error}")
        if report.failed:
            raise DeliveryFailed(report.line())
        return report

    def notify(self, *, to: Any = "owner", entity: str | None, record: Mapping[str, Any] | None, key: str,
               automation: str | None = None, template: str | None = None,
               title: Mapping[str, str] | None = None, body: Mapping[str, str] | None = None,
               approval: Mapping[str, Any] | None = None, link: str | None = None) -> Report:
        """An in-app notification (a template's, or a title and body given as
        templates per language) for each user recipient, once per key."""
        spec = self.spec.templates[template] if template else TemplateSpec(
            name="notify", channel=IN_APP, body=body or {}, subject=title or None)
        report = Report(f"in_app '{template}'" if template else "in_app notification")
        entity_spec = self.spec.entities.get(entity or "")
        origin = Origin(automation, entity, _record_id(record), template)
        with self.rt.engine.connect() as conn:
            recipients = [r for r in RecipientFinder(self.rt, conn, approval).find(to, entity_spec, record, IN_APP)
                          if r.user_id is not None]
            rendered = []
            for recipient in recipients:
                texts = {lang: self.render(spec, entity, record, lang, recipient, conn, approval)
                         for lang in self.spec.locales}
                rendered.append((recipient, {lang: s for lang, (s, _) in texts.items()},
                                 {lang: b for lang, (_, b) in texts.items()}))
        for recipient, titles, bodies in rendered:
            assert recipient.user_id is not None
            made = self.store.notify(key=f"{key}:{IN_APP}:{recipient.user_id}", user_id=recipient.user_id,
                                     recipient=recipient.username or recipient.name, title=titles, body=bodies,
                                     language=self.language_for(recipient), origin=origin)
            if made:
                report.sent.append(recipient.name)
            else:
                report.repeated += 1
        return report

    def webhook(self, *, url: str, method: str = "POST", entity: str | None, record: Mapping[str, Any] | None,
                key: str, automation: str | None = None, timeout: float | None = None) -> Report:
        """POST (PUT, PATCH) the record as JSON to a URL, signed (HMAC-SHA256 of
        the body with CRMKIT_WEBHOOK_SECRET in X-Crmkit-Signature); a failure
        (no answer, or not 2xx) is recorded and raised, for the job queue to retry."""
        report = Report(f"webhook {method} {_shown_url(url)}")
        origin = Origin(automation, entity, _record_id(record))
        effect = f"{key}:webhook"
        message_id = self.store.claim(effect, "webhook", _shown_url(url), origin)
        if message_id is None:
            report.repeated += 1
            return report
        payload = self.webhook_payload(entity, record, automation, effect)
        status = 0
        try:
            status, answer = post_json(url, payload, secret=self.settings.webhook_secret,
                                       timeout=timeout or self.settings.timeout, key=effect, method=method)
            error = "" if 200 <= status < 300 else f"answered {status}: {answer}"
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
        self.store.finish(message_id, status=FAILED if error else SENT, error=error,
                          subject=f"{method} {_shown_url(url)}", body="", recipient_name=_shown_url(url))
        if error:
            report.failed.append(error[:200])
            if 400 <= status < 500 and status not in RETRYABLE_4XX:
                raise RefusedDelivery(report.line())
            raise DeliveryFailed(report.line())
        report.sent.append(_shown_url(url))
        return report

    def webhook_payload(self, entity: str | None, record: Mapping[str, Any] | None, automation: str | None,
                        key: str) -> dict[str, Any]:
        """The JSON a webhook receives: every stored field of the record, as the API dumps it."""
        data = None
        if entity in self.rt.schemas and record is not None:
            data = self.rt.schemas[entity].dump(record)
        return {"app": self.spec.name, "automation": automation, "entity": entity, "record": data,
                "delivery": key, "sent_at": dt.datetime.now(dt.UTC).isoformat()}

    # ------------------------------------------------------------ dry runs

    def preview(self, *, template: str, to: Any, entity: str | None, record: Mapping[str, Any] | None,
                channel: str | None = None, language: str | None = None,
                approval: Mapping[str, Any] | None = None) -> str:
        """What ``send`` would do, without sending or writing anything."""
        spec = self.spec.templates[template]
        channel_name = channel or spec.channel
        sender = self.channels.get(channel_name)
        lang = self.language(language)
        with self.rt.engine.connect() as conn:
            recipients = RecipientFinder(self.rt, conn, approval).find(to, self.spec.entities.get(entity or ""),
                                                                       record, channel_name)
            if not recipients:
                return f"would send {channel_name} '{template}' to nobody (no recipient found)"
            first = recipients[0]
            subject, body = self.render(spec, entity, record, lang, first, conn, approval)
        if channel_name == IN_APP:
            addresses = [r.name for r in recipients if r.user_id is not None]
        else:
            addresses = [f"{r.name} <{sender.address(r) if sender else None}>" for r in recipients]
        state = "" if channel_name == IN_APP or (sender is not None and sender.configured()) else \
            f" (not sent: {NO_GATEWAY})"
        text = f"{subject}: {body}" if subject else body
        return f"would send {channel_name} '{template}' to {', '.join(addresses)}{state}: {text[:200]}"


    def preview_notification(self, *, to: Any, entity: str | None, record: Mapping[str, Any] | None,
                             title: Mapping[str, str] | None, body: Mapping[str, str] | None) -> str:
        """What ``notify`` with a title and body written in place would do."""
        spec = TemplateSpec(name="notify", channel=IN_APP, body=body or {}, subject=title or None)
        lang = self.language(None)
        with self.rt.engine.connect() as conn:
            recipients = [r for r in RecipientFinder(self.rt, conn).find(to, self.spec.entities.get(entity or ""),
                                                                         record, IN_APP) if r.user_id is not None]
            if not recipients:
                return "would notify nobody (no user recipient found)"
            subject, text = self.render(spec, entity, record, lang, recipients[0], conn)
        shown = f"{subject}: {text}" if subject else text
        return f"would notify {', '.join(r.name for r in recipients)} in the app: {shown[:200]}"


def _failed(exc: Exception) -> Any:
    from .channels import Delivery

    return Delivery(FAILED, f"{type(exc).__name__}: {exc}"[:500])


def _record_id(record: Mapping[str, Any] | None) -> int | None:
    value = record.get("id") if record is not None else None
    return value if isinstance(value, int) else None


def _shown_url(url: str) -> str:
    """A URL without its query and credentials (they may hold secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"

