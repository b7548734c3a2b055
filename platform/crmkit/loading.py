"""Loading a config directory into an AppSpec, with plugin contributions merged."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pluggy

from .fieldtypes import FieldType
from .gcpause import paused_gc
from .metadata.checker import build_spec
from .metadata.loader import Document, load_directory
from .metadata.problems import ConfigError, Problem, ProblemList
from .metadata.spec import AppSpec
from .plugins import PluginError, call_startup_hook, make_plugin_manager, startup_results


def field_types(pm: pluggy.PluginManager) -> dict[str, FieldType]:
    """Every field type, the built-in ones included (crmkit.fieldtypes is an
    internal plugin of the same hook); two plugins defining one name is an error."""
    types: dict[str, FieldType] = {}
    source: dict[str, str] = {}
    for plugin, contributed in reversed(startup_results(pm, "crmkit_field_types")):  # in registration order
        for ftype in contributed or ():
            if ftype.name in types:
                raise PluginError(f"plugin '{plugin}' defines field type '{ftype.name}', which "
                                  f"{source[ftype.name]} already defines")
            types[ftype.name] = ftype
            source[ftype.name] = plugin
    return types


def automation_actions(pm: pluggy.PluginManager) -> dict[str, Any]:
    """Every automation action by name (ActionType), the built-in ones included
    (crmkit.automations.plugin contributes them like a plugin); two plugins
    defining one name is an error."""
    actions: dict[str, Any] = {}
    source: dict[str, str] = {}
    for plugin, contributed in reversed(startup_results(pm, "crmkit_automation_actions")):
        for action in contributed or ():
            if action.name in actions:
                raise PluginError(f"plugin '{plugin}' defines automation action '{action.name}', which "
                                  f"{source[action.name]} already defines")
            actions[action.name] = action
            source[action.name] = plugin
    return actions


def _enabled_plugins(documents: list[Document]) -> list[str]:
    for doc in documents:
        if doc.kind == "app" and isinstance(doc.data.get("plugins"), list):
            return [str(p) for p in doc.data["plugins"]]
    return []


def load_config(config_dir: str | Path) -> tuple[AppSpec, pluggy.PluginManager, Mapping[str, FieldType]]:
    """Load, merge and check a config; raises ConfigError listing every problem
    (a plugin that cannot be loaded is one of them)."""
    root = Path(config_dir)
    if not root.is_dir():
        raise ConfigError([Problem(str(root), 1, 1, "config directory not found")])
    problems = ProblemList()
    raw: list[Problem] = []
    with paused_gc():
        return _load(root, problems, raw)


def _load(root: Path, problems: ProblemList, raw: list[Problem]
          ) -> tuple[AppSpec, pluggy.PluginManager, Mapping[str, FieldType]]:
    documents = load_directory(root, raw)
    app_file = next((d.file for d in documents if d.kind == "app"), "app.yaml")
    try:
        pm = make_plugin_manager(_enabled_plugins(documents))
        metadata_dirs = call_startup_hook(pm, "crmkit_metadata_dirs")
        types = field_types(pm)
        actions = automation_actions(pm)
    except PluginError as exc:
        raise ConfigError([Problem(app_file, 1, 1, str(exc))]) from None
    for plugin_dirs in metadata_dirs:
        for directory in plugin_dirs or ():
            plugin_name = Path(directory).parent.name
            documents.extend(load_directory(Path(directory), raw, prefix=f"<plugin {plugin_name}>/"))
    for problem in raw:
        problems.add_problem(problem)
    spec = build_spec(documents, types, problems, config_dir=str(root), actions=actions)
    if spec is not None and spec.templates:
        from .messaging.checks import check_templates

        try:
            check_templates(spec, documents, pm, problems)
        except PluginError as exc:
            raise ConfigError([Problem(app_file, 1, 1, str(exc))]) from None
    problems.raise_if_any()
    assert spec is not None
    return spec, pm, types
