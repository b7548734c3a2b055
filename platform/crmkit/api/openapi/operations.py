"""The document being built: its paths and component schemas, and ``_op``,
which adds one operation with the access it needs."""

from __future__ import annotations

from ...fieldtypes import FieldType
from ...metadata.spec import EntitySpec
from ...runtime import Runtime
from .pieces import ACCESS, ADMIN_ONLY, NEEDS, _json


class _Operations:
    """The state every area's builder adds to."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.spec = rt.spec
        self.types: dict[str, FieldType] = dict(rt.field_types)
        self.paths: dict[str, dict] = {}
        self.schemas: dict[str, dict] = {}
        #: Parameters shared by operations (each entity's list parameters), by name.
        self.parameters: dict[str, dict] = {}

    def _op(self, path: str, method: str, tag: str, summary: str, responses: dict, *,
            access: list | None = None, needs: list | None = None, parameters: list | None = None,
            body: dict | None = None, body_required: bool = True, description: str = "",
            public: bool = False, admin: bool = False) -> None:
        operation: dict = {"tags": [tag], "summary": summary,
                           "operationId": f"{method}_{path.removeprefix('/api/v1/').strip('/')}".translate(
                               str.maketrans("/{}.", "____")) or f"{method}_root",
                           "responses": responses}
        if description:
            operation["description"] = description
        if parameters:
            operation["parameters"] = parameters
        if body is not None:
            operation["requestBody"] = {"required": body_required, "content": _json(body)}
        if access is not None:
            operation[ACCESS] = access
        if needs is not None:
            operation[NEEDS] = needs
        if public:
            operation["security"] = [{}]
        if admin:
            operation[ADMIN_ONLY] = True
        self.paths.setdefault(path, {})[method] = operation

    def _read_name(self, entity: EntitySpec) -> str:
        return type(self.rt.schemas[entity.name].read).__name__
