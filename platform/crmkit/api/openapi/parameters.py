"""The parameters of a list (limit, cursor, sort, fields, search, tags and
views, a filter per field and operator), defined once per entity or
platform list and referred to by its operations."""

from __future__ import annotations

from ...fieldtypes import DATE, DATE_TIME, MAX_ID, MAX_INTEGER, DecimalType
from ...metadata.spec import EntitySpec, FieldSpec
from ...query import MAX_IN_VALUES
from .operations import _Operations
from .pieces import CURSOR, ENTITY, FIELD, TAGS, TEXT, _array, _query, _ref


class _ListParameters(_Operations):
    """A list's query parameters."""

    def _filter_value(self, f: FieldSpec) -> dict:
        """The schema of a filter value on the field (a query string, read by parse_text)."""
        kind = f.type
        if f.name == "id" or f.system and kind == "integer" or kind == "ref":
            return {"type": "integer", "minimum": 0, "maximum": MAX_ID}  # ids are never negative
        if kind == "integer":
            return {"type": "integer", "minimum": -MAX_INTEGER, "maximum": MAX_INTEGER}
        ftype = self.types[kind]
        if isinstance(ftype, DecimalType):
            scale = ftype.scale(f)
            limit = 10 ** (ftype.precision(f) - scale)
            return {"type": "number", "exclusiveMinimum": -limit, "exclusiveMaximum": limit,
                    "multipleOf": 1 if scale == 0 else 10.0 ** -scale}
        if kind == "boolean":
            return {"type": "boolean"}
        if kind == "date":
            return {"type": "string", "format": "date", "pattern": DATE.pattern}
        if kind == "datetime":
            return {"type": "string", "anyOf": [{"format": "date-time", "pattern": DATE_TIME.pattern},
                                                {"format": "date", "pattern": DATE.pattern}],
                    "description": "A date-time with an offset, or a date (its midnight in the app's timezone)."}
        if kind in ("enum", "multi_enum"):
            return {"enum": list(f.option_values)}
        if kind == "region":
            return _ref("RegionDistrict" if f.level in (None, "district") else f"Region{f.level.capitalize()}")
        return dict(TEXT)

    def _filters(self, entity: EntitySpec) -> list[dict]:
        parameters = []
        for f in entity.fields.values():
            ops = self.types[f.type].operators if f.name != "id" else ("eq", "ne", "gt", "gte", "lt", "lte", "in",
                                                                         "nin")
            value = self._filter_value(f)
            for op in ops:
                name = f.name if op == "eq" else f"{f.name}__{op}"
                extra: dict = {}
                if op == "isnull":
                    schema: dict = {"type": "boolean"}
                elif op in ("in", "nin"):
                    item = {"type": "string", "pattern": "^[^,\\x00]+$"} if value == TEXT else value
                    schema = _array(item, minItems=1, maxItems=MAX_IN_VALUES)
                    extra = {"style": "form", "explode": False}
                elif op in ("contains", "startswith") and f.type != "multi_enum":
                    schema = dict(TEXT)
                elif op == "within":
                    schema = _ref("RegionDistrict")
                else:
                    schema = value
                parameters.append(_query(name, schema, **extra, **{FIELD: f.name}))
        return parameters

    def _tag_parameters(self, entity: EntitySpec) -> list[dict]:
        """``tag``, ``tag__in``, ``tag__nin`` and ``view`` of an entity with tags or views."""
        parameters = []
        tags = [tag.name for tag in self.rt.queries.tag_catalog.by_entity.get(entity.name, ())]
        if tags:
            names = _array({"enum": tags}, minItems=1, maxItems=MAX_IN_VALUES)
            parameters += [
                _query("tag", names, "Records with this tag (repeat the parameter: with each of them).",
                       style="form", explode=True, **{TAGS: True}),
                _query("tag__in", names, "Records with any of these tags.", style="form", explode=False,
                       **{TAGS: True}),
                _query("tag__nin", names, "Records with none of these tags.", style="form", explode=False,
                       **{TAGS: True}),
            ]
        views = [name for name, view in self.spec.views.items() if view.entity == entity.name]
        if views:
            parameters.append(_query("view", {"enum": views}, "A saved view (views.yaml): its filters, its sort "
                                     "(unless sort is given) and its `where` condition, checked against your access "
                                     "and run within your data scope.", **{TAGS: "views"}))
        return parameters

    def _list_parameters(self, entity: EntitySpec, *, export: bool = False) -> list[dict]:
        sortable = [f.name for f in entity.fields.values() if self.types[f.type].sortable]
        parameters = []
        if not export:
            parameters += [
                _query("limit", {"type": "integer", "minimum": 1, "maximum": self.spec.max_page_size,
                                 "default": entity.list.page_size}),
                _query("cursor", CURSOR, "The `next` value of the previous page, unchanged."),
                _query("count", {"type": "boolean"}, "Also return the total count."),
            ]
        parameters += [
            _query("sort", _array({"enum": [d + n for n in sortable for d in ("", "-")]}, uniqueItems=True),
                   "Fields to sort by, `-` for descending; the configured order when left out.",
                   style="form", explode=False),
            _query("fields", _array({"enum": list(entity.fields)}),
                   "The fields to return (id and version always come).", style="form", explode=False),
        ]
        if entity.list.search:
            parameters.append(_query("q", TEXT, "Search in: " + ", ".join(entity.list.search)))
        parameters += self._tag_parameters(entity)
        parameters += self._filters(entity)
        refs = []
        for parameter in parameters:  # defined once per entity, referred to by its lists, exports, relations
            key = f"{entity.name}.{parameter['name']}"
            if key not in self.parameters:
                # A config entity's parameters follow its field rules; the platform's lists have none.
                governed = entity.name in self.spec.entities
                self.parameters[key] = {**parameter, ENTITY: entity.name} if governed else parameter
            refs.append({"$ref": f"#/components/parameters/{key}"})
        return refs
