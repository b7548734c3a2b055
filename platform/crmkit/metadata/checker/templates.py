"""The message templates typed as TemplateSpecs (their variables and channels
are checked by crmkit.messaging)."""

from __future__ import annotations

from ..loader import Document
from ..problems import ProblemList, did_you_mean
from ..spec import TemplateSpec
from .entities import _Known
from .naming import _as_label, _defined_once


def _build_templates(docs: list[Document], known: _Known, problems: ProblemList) -> dict[str, TemplateSpec]:
    """The message templates, typed; their variables and channels are checked
    by crmkit.messaging once the whole spec is built (they read the entities)."""
    templates: dict[str, TemplateSpec] = {}
    seen: dict[str, Document] = {}
    for doc in docs:
        for name, raw in doc.data["templates"].items():
            if not _defined_once(doc, "template", name, seen, problems):
                continue
            entity = raw.get("entity")
            if entity is not None and not known.declares(entity):
                problems.add(doc, ("templates", name, "entity"), f"unknown entity '{entity}'",
                             did_you_mean(entity, known.entities))
            templates[name] = TemplateSpec(
                name=name, channel=raw["channel"], body=_as_label(raw["body"], name),
                subject=_as_label(raw["subject"], name) if "subject" in raw else None,
                label=_as_label(raw["label"], name) if "label" in raw else None,
                entity=entity, source=doc.file)
    return templates
