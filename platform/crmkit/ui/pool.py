"""The pool on the screens (crmkit.pool): "Claim" on the record page and on
the list's pool rows, "Release to the pool" on the record page of its owner.
Both post to the records service's pool (CSRF-checked like every form) and
come back with a message."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from flask import abort, current_app, flash, request
from flask_babel import gettext
from werkzeug.wrappers import Response

from ..api.http import current_actor
from ..errors import CrmError, NotFound
from ..metadata.spec import EntitySpec, label_text
from ..permissions import Actor
from ..runtime import Runtime
from .i18n import locale
from .security import done
from .shell import bp

CLAIM, RELEASE = "claim", "release"


def _runtime() -> Runtime:
    rt: Runtime = current_app.extensions["crmkit"]
    return rt


def pool_action(rt: Runtime, entity: EntitySpec, owner_id: int | None, actor: Actor) -> str | None:
    """What the record page offers for the pool: claim (a pool record the
    reader may claim), release (the reader's own record), or nothing."""
    if entity.pool is None or actor.id is None:
        return None
    if owner_id is None:
        return CLAIM if rt.records.pool.may_claim(actor, entity) else None
    return RELEASE if owner_id == actor.id else None


def claimable(rt: Runtime, conn: sa.Connection, entity: EntitySpec, ids: Sequence[int],
              actor: Actor) -> set[int] | None:
    """Of a list page's records, those in the pool the reader may claim
    (None: the list has no claim column for this reader)."""
    if entity.pool is None or not ids or not rt.records.pool.may_claim(actor, entity):
        return None
    return rt.records.pool.in_pool(conn, entity, ids)


def _back(entity: EntitySpec, record_id: int) -> str:
    target = request.form.get("next") or ""
    return target if target.startswith("/app/") else f"/app/{entity.name}/{record_id}"


def _pool_post(entity_name: str, record_id: int, action: str) -> Response:
    rt = _runtime()
    entity = rt.spec.entities.get(entity_name)
    if entity is None or entity.pool is None:
        abort(404)
    what = label_text(entity.label, locale(), entity.name)
    try:
        if action == CLAIM:
            rt.records.pool.claim(entity.name, record_id, current_actor())
            flash(gettext("%(what)s claimed: it is yours now.", what=what), "success")
        else:
            rt.records.pool.release(entity.name, record_id, current_actor())
            flash(gettext("%(what)s released to the pool.", what=what), "success")
    except NotFound:
        abort(404)
    except CrmError as exc:
        message = exc.message if isinstance(exc.message, str) else str(exc)
        flash(gettext("Not claimed: %(reason)s", reason=message) if action == CLAIM
              else gettext("Not released: %(reason)s", reason=message), "error")
    return done(_back(entity, record_id))


@bp.post("/<entity_name>/<int:record_id>/claim")
def claim_record(entity_name: str, record_id: int) -> Response:
    return _pool_post(entity_name, record_id, CLAIM)


@bp.post("/<entity_name>/<int:record_id>/release")
def release_record(entity_name: str, record_id: int) -> Response:
    return _pool_post(entity_name, record_id, RELEASE)
