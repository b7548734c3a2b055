"""The plugin host: pluggy, plugins found through the ``crmkit.plugins`` entry point group.

Core behaviour (field types, audit, auto-numbers) is registered as internal
plugins, so the hooks are used by the platform itself every day.

A plugin says which version of the hook specifications it was built for with
a ``crmkit_hookspec = "MAJOR.MINOR"`` attribute (on its module, or on the
object its entry point names). One built for another major version refuses to
load, with a message naming it; an older minor version loads (minor versions
only add hooks). A plugin without the attribute is taken as built for 1.0,
the version before plugins declared it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = "crmkit.plugins"
#: pluggy calls the last registered first: the rules (formulas, rollups) before
#: the audit trail records the write, tags after both (rules read formulas), and
#: automations last (they enqueue runs of the write as it stands).
INTERNAL_PLUGINS = ("crmkit.automations.plugin", "crmkit.fieldtypes", "crmkit.autonumber", "crmkit.tagging",
                    "crmkit.audit", "crmkit.saved_views", "crmkit.approvals", "crmkit.rules", "crmkit.jobs.plugin",
                    "crmkit.messaging.plugin", "crmkit.assignment", "crmkit.pool")
#: The attribute in which a plugin declares the hookspec version it was built for.
HOOKSPEC_ATTRIBUTE = "crmkit_hookspec"
#: What a plugin that declares no version was built for.
UNDECLARED_HOOKSPEC = "1.0"


class PluginError(Exception):
    """A plugin could not be found or loaded; the message names it."""


def startup_results(pm: pluggy.PluginManager, name: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call a start-up hook one plugin at a time (in pluggy's order), so an
    exception becomes a PluginError naming the plugin that raised it; returns
    (plugin name, result) of each plugin that returned something."""
    results = []
    for impl in reversed(getattr(pm.hook, name).get_hookimpls()):
        try:
            result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
        except Exception as exc:
            raise PluginError(f"plugin '{impl.plugin_name}' failed in {name}: {type(exc).__name__}: {exc}") from exc
        if result is not None:
            results.append((impl.plugin_name, result))
    return results


def call_startup_hook(pm: pluggy.PluginManager, name: str, **kwargs: Any) -> list[Any]:
    """The results of a start-up hook (see startup_results)."""
    return [result for _, result in startup_results(pm, name, **kwargs)]


def available_plugins() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def built_for(name: str, plugin: object) -> str:
    """The hookspec version a plugin was built for; a PluginError when this
    crmkit cannot run it (another major version, or a declaration that is not a version)."""
    declared = getattr(plugin, HOOKSPEC_ATTRIBUTE, UNDECLARED_HOOKSPEC)
    if not isinstance(declared, str) or not re.fullmatch(r"\d{1,4}\.\d{1,4}", declared):
        raise PluginError(f"plugin '{name}' declares {HOOKSPEC_ATTRIBUTE} = {declared!r}; "
                          f'expected the hookspec version it was built for, such as "{hookspecs.HOOKSPEC_VERSION}"')
    major, _ = _version(declared)
    ours, _ = _version(hookspecs.HOOKSPEC_VERSION)
    if major > ours:
        raise PluginError(f"plugin '{name}' is built for crmkit hookspec {declared}, newer than this crmkit's "
                          f"{hookspecs.HOOKSPEC_VERSION}: upgrade crmkit, or install a release of the plugin "
                          f"built for hookspec {ours}.x")
    if major < ours:
        raise PluginError(f"plugin '{name}' is built for crmkit hookspec {declared}, older than this crmkit's "
                          f"{hookspecs.HOOKSPEC_VERSION} (hook signatures changed in {ours}.0): install a release "
                          f"of the plugin built for hookspec {ours}.x")
    return declared


def make_plugin_manager(enabled: Iterable[str] = ()) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for module_name in INTERNAL_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    found = available_plugins()
    for name in enabled:
        entry_point = found.get(name)
        if entry_point is None:
            known = ", ".join(sorted(found)) or "none installed"
            raise PluginError(f"plugin '{name}' is enabled in the config but not installed "
                              f"(installed plugins: {known}); install its package, e.g. pip install crmkit-{name}")
        try:
            plugin = entry_point.load()
        except Exception as exc:  # a broken plugin must name itself, whatever it raised
            raise PluginError(f"plugin '{name}' failed to load from {entry_point.value}: "
                              f"{type(exc).__name__}: {exc}") from exc
        version = built_for(name, plugin)
        try:
            pm.register(plugin, name=name)
            pm.check_pending()
        except (ValueError, pluggy.PluginValidationError) as exc:
            newer = (f" (it is built for hookspec {version}; this crmkit has {hookspecs.HOOKSPEC_VERSION})"
                     if _version(version) > _version(hookspecs.HOOKSPEC_VERSION) else "")
            raise PluginError(f"plugin '{name}' is not a valid crmkit plugin{newer}: {exc}") from exc
    return pm
