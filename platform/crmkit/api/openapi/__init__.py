"""The OpenAPI 3.1 document: every route the app serves, with its parameters,
bodies and responses, described as the server enforces them (a test walks the
URL map; schemathesis checks the server against the document).

Built once per runtime from the spec, the field types and the entities'
marshmallow schemas (through apispec). Each operation names the access it
needs (``x-crmkit-access``); a caller's view leaves out what their roles do
not allow, fields hidden from them, and the parameters of fields they may not
filter on. Views are cached per combination of roles.
"""

from .assembly import build_document
from .caller_view import document

__all__ = ["build_document", "document"]
