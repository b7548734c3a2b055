"""The checks of tags documents into TagSpecs (their rules are checked against
the whole spec, by crmkit.tagging)."""

from __future__ import annotations

from ..loader import Document
from ..spec import TagSpec
from .naming import _as_label, _defined_once
from .views import _References


def _build_tags(docs: list[Document], refs: _References) -> dict[str, TagSpec]:
    tags: dict[str, TagSpec] = {}
    seen: dict[str, Document] = {}
    for doc in docs:
        for name, raw in doc.data["tags"].items():
            if not _defined_once(doc, "tag", name, seen, refs.problems):
                continue
            refs.entity(doc, ("tags", name, "entity"), raw["entity"])
            tags[name] = TagSpec(name=name, entity=raw["entity"], label=_as_label(raw.get("label"), name),
                                 color=raw.get("color"), rule=raw.get("rule"), use=raw.get("use", ""),
                                 source=doc.file,
                                 group=_as_label(raw["group"], "") if "group" in raw else None)
    return tags
