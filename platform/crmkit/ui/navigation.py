"""The shell's navigation: the entities a user may read, in the menu's order
and groups (app.yaml ``menu``), the rest after them."""

from __future__ import annotations

from dataclasses import dataclass

from ..metadata.spec import AppSpec, Label, ViewSpec
from ..permissions import Access


@dataclass(frozen=True, slots=True)
class NavGroup:
    #: The group's heading (config label); None: entities listed without one.
    label: Label | None
    entities: tuple[str, ...]
    #: The group of what the menu leaves out (headed "More" when there is a menu).
    rest: bool = False


def view_offered(view: ViewSpec, access: Access) -> bool:
    """Whether a view of views.yaml is offered to these roles (to every role when it names none)."""
    return not view.roles or bool(set(view.roles) & set(access.roles))


def navigation(spec: AppSpec, access: Access) -> list[NavGroup]:
    """The groups of entity names this access may read; empty groups are left out.

    Without a menu every readable entity is listed, in the config's order, in
    one unheaded group; with one, the menu's groups come first and what it
    leaves out follows in a last group, so no readable entity is unreachable."""
    readable = [name for name in spec.entities if access.entity(name).allows("read")]
    groups: list[NavGroup] = []
    placed: set[str] = set()
    for group in spec.menu:
        names = tuple(name for name in group.entities if name in readable)
        placed.update(group.entities)
        if names:
            groups.append(NavGroup(group.label, names))
    rest = tuple(name for name in readable if name not in placed)
    if rest:
        groups.append(NavGroup(None, rest, rest=bool(spec.menu)))
    return groups
