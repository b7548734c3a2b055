"""The automation actions of messaging: ``send``, ``notify`` and ``webhook``.

Each has the shape of crmkit.automations' ActionType (a name, ``check``,
``run`` and ``describe``), structurally: the automations engine wires them
in. ``run`` returns one line for the run log; a failed delivery raises
DeliveryFailed after the rest was sent, so the job queue retries the action
and only what failed goes out again (effect keys). ``describe`` says what a
run would do (a dry run) and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..metadata.problems import did_you_mean
from ..metadata.spec import AppSpec, EntitySpec
from .channels import IN_APP
from .recipients import check_to
from .templates import template_problems

WEBHOOK_METHODS = ("POST", "PUT", "PATCH")
MAX_WEBHOOK_TIMEOUT = 60


def _messenger(ctx: Any) -> Any:
    return ctx.runtime.messaging


def _entity_name(ctx: Any) -> str | None:
    return ctx.entity


def _template_problems(spec: AppSpec, entity: EntitySpec | None, name: str, text: Any, part: str) -> list[str]:
    if entity is None:
        return []
    texts = {lang: text for lang in ("text",)} if isinstance(text, str) else dict(text or {})
    problems = []
    for lang, source in texts.items():
        where = part if lang == "text" else f"{part} ({lang})"
        for line, message, hint in template_problems(spec, entity, str(source)):
            at = f" line {line}" if line > 1 else ""
            problems.append(f"template '{name}' {where}{at}: {message}" + (f" ({hint})" if hint else ""))
    return problems


class SendAction:
    """``send: {template: T, to: owner, channel: sms, language: zh}``: the
    template rendered for the record, sent on its channel to each recipient
    (``channel`` may be left out; if given it must be the template's)."""

    name = "send"

    def check(self, args: Any, entity: EntitySpec | None, spec: AppSpec) -> list[str]:
        if not isinstance(args, Mapping):
            return ["send takes {template: NAME, to: RECIPIENTS}"]
        unknown = set(args) - {"template", "to", "channel", "language"}
        problems = [f"send: unknown key '{key}'" for key in sorted(unknown)]
        name = args.get("template")
        if not isinstance(name, str):
            return problems + ["send needs a template (a name from templates.yaml)"]
        template = spec.templates.get(name)
        if template is None:
            hint = did_you_mean(name, spec.templates)
            return problems + [f"unknown template '{name}'" + (f" ({hint})" if hint else "")]
        channel = args.get("channel", template.channel)
        if channel != template.channel:
            problems.append(f"template '{name}' is written for {template.channel}, not {channel}")
        if "language" in args and args["language"] not in spec.locales:
            problems.append(f"send: language must be one of {', '.join(spec.locales)}")
        if template.entity is not None and entity is not None and template.entity != entity.name:
            problems.append(f"template '{name}' is written about {template.entity} records, not {entity.name}")
        problems += check_to(spec, entity, args.get("to", "owner"), channel)
        problems += _template_problems(spec, entity, name, template.subject, "subject")
        problems += _template_problems(spec, entity, name, template.body, "body")
        return problems

    def run(self, ctx: Any, args: Mapping[str, Any]) -> str:
        report = _messenger(ctx).send(template=args["template"], to=args.get("to", "owner"),
                                      entity=_entity_name(ctx), record=ctx.record, key=ctx.key,
                                      automation=ctx.automation, channel=args.get("channel"),
                                      language=args.get("language"), approval=getattr(ctx, "approval", None))
        return report.line()

    def describe(self, ctx: Any, args: Mapping[str, Any]) -> str:
        return _messenger(ctx).preview(template=args["template"], to=args.get("to", "owner"),
                                       entity=_entity_name(ctx), record=ctx.record, channel=args.get("channel"),
                                       language=args.get("language"))


class NotifyAction:
    """``notify: {to: owner, template: T}`` or ``notify: {to: {role: R},
    title: {zh: .., en: ..}, body: {zh: .., en: ..}}``: an in-app
    notification (the bell of the screens) for each user recipient."""

    name = "notify"

    def check(self, args: Any, entity: EntitySpec | None, spec: AppSpec) -> list[str]:
        if not isinstance(args, Mapping):
            return ["notify takes {to: RECIPIENTS, template: NAME} or {to: RECIPIENTS, title: .., body: ..}"]
        unknown = set(args) - {"template", "to", "title", "body"}
        problems = [f"notify: unknown key '{key}'" for key in sorted(unknown)]
        name = args.get("template")
        if name is not None:
            template = spec.templates.get(name) if isinstance(name, str) else None
            if template is None:
                hint = did_you_mean(name, spec.templates)
                return problems + [f"unknown template '{name}'" + (f" ({hint})" if hint else "")]
            if template.channel != IN_APP:
                problems.append(f"template '{name}' is written for {template.channel}, not in_app")
            if "body" in args or "title" in args:
                problems.append("notify: give a template or a title and body, not both")
            problems += _template_problems(spec, entity, name, template.subject, "subject")
            problems += _template_problems(spec, entity, name, template.body, "body")
        elif not isinstance(args.get("body"), str | Mapping):
            problems.append("notify needs a template, or a body (text, or {zh: .., en: ..})")
        else:
            problems += _template_problems(spec, entity, "notify", args.get("title"), "title")
            problems += _template_problems(spec, entity, "notify", args.get("body"), "body")
        problems += check_to(spec, entity, args.get("to", "owner"), IN_APP)
        return problems

    def run(self, ctx: Any, args: Mapping[str, Any]) -> str:
        report = _messenger(ctx).notify(to=args.get("to", "owner"), entity=_entity_name(ctx), record=ctx.record,
                                        key=ctx.key, automation=ctx.automation, template=args.get("template"),
                                        title=_label(args.get("title")), body=_label(args.get("body")),
                                        approval=getattr(ctx, "approval", None))
        return report.line()

    def describe(self, ctx: Any, args: Mapping[str, Any]) -> str:
        messenger = _messenger(ctx)
        if args.get("template"):
            return messenger.preview(template=args["template"], to=args.get("to", "owner"),
                                     entity=_entity_name(ctx), record=ctx.record)
        return messenger.preview_notification(to=args.get("to", "owner"), entity=_entity_name(ctx),
                                              record=ctx.record, title=_label(args.get("title")),
                                              body=_label(args.get("body")))


class WebhookAction:
    """``webhook: {url: https://.., method: POST, timeout: 10}``: the record as
    JSON (every stored field), signed with CRMKIT_WEBHOOK_SECRET."""

    name = "webhook"

    def check(self, args: Any, entity: EntitySpec | None, spec: AppSpec) -> list[str]:
        if not isinstance(args, Mapping):
            return ["webhook takes {url: https://..., method: POST}"]
        problems = [f"webhook: unknown key '{key}'" for key in sorted(set(args) - {"url", "method", "timeout"})]
        url = args.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append("webhook: url must be an http:// or https:// address")
        method = args.get("method", "POST")
        if method not in WEBHOOK_METHODS:
            problems.append(f"webhook: method must be one of {', '.join(WEBHOOK_METHODS)}, not {method!r}")
        timeout = args.get("timeout", 10)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_WEBHOOK_TIMEOUT:
            problems.append(f"webhook: timeout must be seconds between 1 and {MAX_WEBHOOK_TIMEOUT}")
        return problems

    def run(self, ctx: Any, args: Mapping[str, Any]) -> str:
        report = _messenger(ctx).webhook(url=args["url"], method=args.get("method", "POST"),
                                         entity=_entity_name(ctx), record=ctx.record, key=ctx.key,
                                         automation=ctx.automation, timeout=args.get("timeout"))
        return report.line()

    def describe(self, ctx: Any, args: Mapping[str, Any]) -> str:
        fields = len(ctx.record or {})
        return (f"would {args.get('method', 'POST')} the {ctx.entity} record ({fields} fields) as signed JSON "
                f"to {args['url']}")


def _label(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return {"en": value, "zh": value}
    return {str(k): str(v) for k, v in dict(value).items()}


ACTIONS = (SendAction(), NotifyAction(), WebhookAction())
