"""The plugin host: pluggy, plugins found through the ``crmkit.plugins`` entry point group.

Core behaviour (audit, auto-numbers) is registered as internal plugins, so the
hooks are used by the platform itself every day.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import entry_points

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = "crmkit.plugins"
INTERNAL_PLUGINS = ("crmkit.autonumber", "crmkit.audit")


class PluginError(Exception):
    """A plugin could not be found or loaded; the message names it."""


def call_startup_hook(pm: pluggy.PluginManager, name: str, **kwargs) -> list:
    """Call a start-up hook one plugin at a time (in pluggy's order), so an
    exception becomes a PluginError naming the plugin that raised it."""
    results = []
    for impl in reversed(getattr(pm.hook, name).get_hookimpls()):
        try:
            result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
        except Exception as exc:
            raise PluginError(f"plugin '{impl.plugin_name}' failed in {name}: {type(exc).__name__}: {exc}") from exc
        if result is not None:
            results.append(result)
    return results


def available_plugins() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def make_plugin_manager(enabled: Iterable[str] = ()) -> pluggy.PluginManager:
    import importlib

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
        try:
            pm.register(plugin, name=name)
            pm.check_pending()
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(f"plugin '{name}' is not a valid crmkit plugin: {exc}") from exc
    return pm
