"""What ``crmkit check`` says about templates: the channel exists (a built-in
one or a plugin's), and every variable is a field or a ref path of the
template's entity; mistakes at their file, line and column."""

from __future__ import annotations

from collections.abc import Iterable

import pluggy

from ..metadata.loader import Document
from ..metadata.problems import Problem, ProblemList, did_you_mean
from ..metadata.spec import AppSpec
from .channels import IN_APP
from .messenger import load_channels
from .settings import MessagingSettings
from .templates import template_problems


def channel_names(pm: pluggy.PluginManager) -> list[str]:
    return [IN_APP, *load_channels(pm, MessagingSettings())]


def check_templates(spec: AppSpec, documents: Iterable[Document], pm: pluggy.PluginManager,
                    problems: ProblemList) -> None:
    by_file = {doc.file: doc for doc in documents if doc.kind == "templates"}
    known = channel_names(pm)
    for template in spec.templates.values():
        doc = by_file.get(template.source)
        if doc is None:
            continue
        base = ("templates", template.name)
        if template.channel not in known:
            problems.add(doc, base + ("channel",), f"unknown channel '{template.channel}'",
                         did_you_mean(template.channel, known) or f"channels: {', '.join(known)}")
        entity = spec.entities.get(template.entity or "")
        if entity is None:
            continue
        raw = doc.data["templates"][template.name]
        for part in ("subject", "body"):
            value = raw.get(part)
            texts = [((part,), value)] if isinstance(value, str) else \
                [((part, lang), text) for lang, text in (value or {}).items()]
            for path, text in texts:
                for line, message, hint in template_problems(spec, entity, str(text)):
                    at_line, column = doc.locate_text(base + path, line, 1)
                    problems.add_problem(Problem(doc.file, at_line, column,
                                                 f"template '{template.name}': {message}", hint))


def gateway_warnings(spec: AppSpec, pm: pluggy.PluginManager) -> list[str]:
    """The channels the templates use that have no server or gateway in this environment."""
    from .messenger import unconfigured
    from .settings import from_environment

    return unconfigured(spec, load_channels(pm, from_environment()))
