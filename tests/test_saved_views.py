"""Per-user saved views (crmkit.saved_views): a platform table declared
through the crmkit_tables hook, one writer, and a user reads only their own."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from crmkit.errors import NotFound, ValidationFailed
from crmkit.permissions import SYSTEM, Actor
from crmkit.saved_views import MAX_VIEWS, SAVED_VIEW_TABLE, SavedViews


@pytest.fixture
def views(rt) -> SavedViews:
    return SavedViews(rt.engine, rt.tables.metadata)


ANN, BOB = Actor(1, "ann"), Actor(2, "bob")


def test_the_table_comes_from_the_hook_and_is_migrated(rt):
    assert SAVED_VIEW_TABLE in rt.tables.metadata.tables
    assert SAVED_VIEW_TABLE in sa.inspect(rt.engine).get_table_names()


def test_a_user_sees_only_their_own_views(views):
    saved = views.save(ANN, "customer", "  Gold   buyers ", [("level", "gold"), ("sort", "-name")])
    views.save(BOB, "customer", "Mine", [("owner_id", "2")])
    views.save(ANN, "order", "Big", [("total__gte", "1000")])
    assert saved.name == "Gold buyers" and saved.args() == [("level", "gold"), ("sort", "-name")]
    assert [v.name for v in views.of(ANN, "customer")] == ["Gold buyers"]
    assert [v.name for v in views.of(BOB, "customer")] == ["Mine"]
    assert views.of(SYSTEM, "customer") == []


def test_saving_under_the_same_name_replaces_the_view(views):
    views.save(ANN, "customer", "Gold", [("level", "gold")])
    views.save(ANN, "customer", "Gold", [("level", "gold"), ("q", "张")])
    assert [v.args() for v in views.of(ANN, "customer")] == [[("level", "gold"), ("q", "张")]]


def test_nobody_deletes_another_users_view(views):
    saved = views.save(ANN, "customer", "Gold", [("level", "gold")])
    with pytest.raises(NotFound):
        views.delete(BOB, saved.id)
    views.delete(ANN, saved.id)
    assert views.of(ANN, "customer") == []


@pytest.mark.parametrize("name", ["", "   ", "x" * 81])
def test_a_view_needs_a_short_name(views, name):
    with pytest.raises(ValidationFailed):
        views.save(ANN, "customer", name, [])


def test_a_user_keeps_a_bounded_number_of_views_per_list(views):
    for n in range(MAX_VIEWS):
        views.save(ANN, "customer", f"v{n}", [("level", "gold")])
    with pytest.raises(ValidationFailed):
        views.save(ANN, "customer", "one too many", [])
