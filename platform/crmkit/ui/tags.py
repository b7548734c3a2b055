"""Tags on the screens: chips on the list's rows and the record page, the
list's tag filter, and the record page's add/remove of manual tags.

Which tags a reader sees is the tag catalog's to say
(``rt.queries.tag_catalog.visible``: a rule tag whose rule reads what they may
not see does not exist for them); a page's tags are read in one query
(``rt.records.tagging.names``); manual tags are put on and taken off through
``rt.records.tagging`` (the update permission on the record, rule tags
refused). A tag's colour in tags.yaml becomes one of a fixed set of CSS
classes (``tag-red``): the CSP allows no style attributes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

import sqlalchemy as sa
from flask import abort, flash, render_template, request
from flask_babel import gettext
from markupsafe import Markup

from ..api.http import current_actor
from ..errors import CrmError, NotFound
from ..metadata.spec import EntitySpec, TagSpec
from ..permissions import Access
from ..runtime import Runtime
from . import display
from .i18n import locale
from .security import redirect_to
from .shell import _runtime, bp

#: The colours a tag may have on the screens (others: the plain chip).
COLOURS = frozenset({"red", "orange", "gold", "green", "teal", "blue", "purple", "pink", "gray"})
ALIASES = {"grey": "gray", "yellow": "gold", "amber": "gold", "violet": "purple", "cyan": "teal",
           "magenta": "pink", "black": "gray", "brown": "orange"}
#: The list arguments of tags: with each, with any of, with none of.
TAG_ARGS = ("tag", "tag__in", "tag__nin")


def colour_class(colour: str | None) -> str:
    """The CSS class of a tag's colour: ``tag-red``, or ``tag-plain`` for a colour outside the set."""
    name = (colour or "").strip().lower()
    name = ALIASES.get(name, name)
    return f"tag-{name}" if name in COLOURS else "tag-plain"


@dataclass(frozen=True, slots=True)
class TagChip:
    """A tag as a reader sees it."""

    name: str
    label: str
    css: str
    #: the tag's business use (the chip's title)
    use: str
    #: set by its rule (not by hand)
    by_rule: bool
    group: str

    def html(self) -> str:
        title = f' title="{escape(self.use)}"' if self.use else ""
        return f'<span class="chip tag {self.css}"{title}>{escape(self.label)}</span>'


def chip(tag: TagSpec, language: str) -> TagChip:
    label = display.label(tag.label, language, tag.name.replace("_", " ").capitalize())
    group = display.label(tag.group, language, "") if tag.group else ""
    return TagChip(tag.name, label, colour_class(tag.color), tag.use, tag.rule is not None, group)


def visible(rt: Runtime, access: Access, entity: EntitySpec) -> dict[str, TagSpec]:
    """The entity's tags this reader sees, by name, in config order."""
    return rt.queries.tag_catalog.visible(access, entity.name)


def chips_by_name(rt: Runtime, access: Access, entity: EntitySpec, language: str) -> dict[str, TagChip]:
    return {name: chip(tag, language) for name, tag in visible(rt, access, entity).items()}


def grouped(chips: Iterable[TagChip]) -> list[tuple[str, list[TagChip]]]:
    """Chips under their group's label (in the order the groups first come; '' for no group)."""
    out: dict[str, list[TagChip]] = {}
    for found in chips:
        out.setdefault(found.group, []).append(found)
    return list(out.items())


def page_tags(rt: Runtime, conn: sa.Connection, entity: EntitySpec, ids: Sequence[int], access: Access,
              language: str) -> dict[int, Markup]:
    """The chips of a page of records, as HTML per record: one query for the page."""
    known = chips_by_name(rt, access, entity, language)
    if not known or not ids:
        return {}
    names = rt.records.tagging.names(conn, entity, ids, access)
    return {record_id: Markup("".join(known[n].html() for n in found if n in known))
            for record_id, found in names.items() if found}


# ------------------------------------------------------------------ the list's filter

@dataclass
class TagFilter:
    """The list's tag filter: the tags the reader sees, by group, and which are asked for."""

    groups: list[tuple[str, list[TagChip]]]
    having: frozenset[str]
    lacking: frozenset[str]


def tag_filter(rt: Runtime, access: Access, entity: EntitySpec, args: Iterable[tuple[str, str]],
               language: str) -> TagFilter | None:
    known = chips_by_name(rt, access, entity, language)
    if not known:
        return None
    having: set[str] = set()
    lacking: set[str] = set()
    for key, value in args:
        if key == "tag":  # tag__in (any of) is kept as it is, outside the checkboxes
            having.add(value)
        elif key == "tag__nin":
            lacking.update(n.strip() for n in value.split(","))
    return TagFilter(grouped(known.values()), frozenset(having), frozenset(lacking))


def chip_text(rt: Runtime, access: Access, entity: EntitySpec, key: str, value: str, language: str) -> str:
    """A tag filter in words, for its removable chip (tag names the reader does not see stay as typed)."""
    known = chips_by_name(rt, access, entity, language)
    names = [value] if key == "tag" else [n.strip() for n in value.split(",")]
    labels = "、".join(known[n].label if n in known else n for n in names)
    if key == "tag":
        return gettext("Tagged %(tag)s", tag=labels)
    if key == "tag__in":
        return gettext("Tagged any of %(tags)s", tags=labels)
    return gettext("Not tagged %(tags)s", tags=labels)


# ------------------------------------------------------------------ the record page

@dataclass
class RecordTags:
    """The tags of one record for its page: its chips, and what the reader may put on."""

    entity: EntitySpec
    record_id: int
    chips: list[TagChip]
    #: manual tags the reader may put on (they may update the record), by group
    addable: list[tuple[str, list[TagChip]]]
    may_update: bool

    @property
    def shown(self) -> bool:
        return bool(self.chips or self.addable)


def record_tags(rt: Runtime, conn: sa.Connection, entity: EntitySpec, record_id: int, access: Access,
                may_update: bool) -> RecordTags | None:
    """None when the entity has no tags the reader sees."""
    language = locale()
    known = chips_by_name(rt, access, entity, language)
    if not known:
        return None
    names = rt.records.tagging.names(conn, entity, [record_id], access).get(record_id, [])
    on = [known[n] for n in names if n in known]
    addable = [c for c in known.values() if not c.by_rule and c.name not in names] if may_update else []
    return RecordTags(entity, record_id, on, grouped(addable), may_update)


def _may_update(rt: Runtime, conn: sa.Connection, entity: EntitySpec, record_id: int) -> bool:
    actor = current_actor()
    ea = rt.permissions.of(actor).entity(entity.name)
    if not ea.scope("update"):
        return False
    return rt.queries.fetch(conn, entity, record_id, actor=actor, actions=("update",), columns=("id",)) is not None


def _section(entity: EntitySpec, record_id: int) -> str:
    rt = _runtime()
    actor = current_actor()
    access = rt.permissions.of(actor)
    with rt.engine.connect() as conn:
        if rt.queries.read_one(conn, entity, record_id, actor=actor, fields=frozenset({"id"})) is None:
            abort(404)
        tags = record_tags(rt, conn, entity, record_id, access, _may_update(rt, conn, entity, record_id))
    if tags is None:
        abort(404)
    return render_template("_record_tags.html", tags=tags, inline_messages=True)


def _change(entity_name: str, record_id: int, name: str, on: bool):
    rt = _runtime()
    entity = rt.spec.entities.get(entity_name)
    if entity is None:
        abort(404)
    try:
        if on:
            rt.records.tagging.add(entity.name, record_id, name, current_actor())
        else:
            rt.records.tagging.remove(entity.name, record_id, name, current_actor())
    except NotFound as exc:
        if exc.code == "unknown_tag":
            flash(gettext("No such tag."), "error")
        else:
            abort(404)
    except CrmError as exc:
        message = exc.message if isinstance(exc.message, str) else str(exc)
        if exc.code == "rule_tag":
            message = gettext("This tag is set by its rule; it cannot be added or removed by hand.")
        flash(gettext("Tags not changed: %(reason)s", reason=message), "error")
    if request.headers.get("HX-Request") == "true":
        return _section(entity, record_id)
    return redirect_to(f"/app/{entity.name}/{record_id}#record-tags")


@bp.post("/<entity_name>/<int:record_id>/tags")
def add_record_tag(entity_name: str, record_id: int):
    """Put the manual tag named in the form on the record."""
    return _change(entity_name, record_id, request.form.get("tag", ""), True)


@bp.post("/<entity_name>/<int:record_id>/tags/<tag>/remove")
def remove_record_tag(entity_name: str, record_id: int, tag: str):
    return _change(entity_name, record_id, tag, False)


def tag_heads(tags: Mapping[str, TagSpec], language: str, tag: str, by: str, added: bool, who: str) -> str | None:
    """A tag change of the history in words ("VIP added by Wang", "Sleeping
    removed by rule"); None for a tag the reader does not see."""
    spec = tags.get(tag)
    if spec is None:
        return None
    label = chip(spec, language).label
    if by == "rule":
        return (gettext("%(tag)s added by rule", tag=label) if added
                else gettext("%(tag)s removed by rule", tag=label))
    return (gettext("%(tag)s added by %(who)s", tag=label, who=who) if added
            else gettext("%(tag)s removed by %(who)s", tag=label, who=who))
