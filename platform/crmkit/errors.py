"""Errors for people: one JSON shape for every API error.

``{"error": {"code": ..., "message": ..., "details": ...}}`` with the HTTP status.
"""

from __future__ import annotations

from typing import Any


class CrmError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None, *, code: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code:
            self.code = code
        if status:
            self.status = status

    def body(self) -> dict:
        error: dict = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


class BadRequest(CrmError):
    status, code = 400, "bad_request"


class ValidationFailed(CrmError):
    """Field-level problems: ``details`` maps field name to a list of messages."""

    status, code = 422, "validation_failed"


class NotFound(CrmError):
    status, code = 404, "not_found"


class Conflict(CrmError):
    status, code = 409, "conflict"


class Unauthorized(CrmError):
    status, code = 401, "unauthorized"


class Forbidden(CrmError):
    """The caller may not do this. ``denial`` says what was refused, for the audit
    trail (written once the request's transaction is over)."""

    status, code = 403, "forbidden"

    def __init__(self, message: str, details: Any = None, *, code: str | None = None,
                 denial: dict | None = None) -> None:
        super().__init__(message, details, code=code)
        self.denial = denial or {}


class TooManyRequests(CrmError):
    status, code = 429, "too_many_requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, {"retry_after": retry_after})
        self.retry_after = retry_after
