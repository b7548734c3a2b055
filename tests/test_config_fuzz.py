"""Fuzzing the checker with mutated copies of the sample config: whatever a
file holds, loading gives a spec or a ConfigError whose every problem has a
file and a line, never another exception.

Bounded to a few seconds in the suite (each example loads the whole sample);
``FUZZ_EXAMPLES=1000`` runs a longer search."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SAMPLE_CONFIG
from crmkit.loading import load_config
from crmkit.metadata.loader import parse_fast
from crmkit.metadata.problems import ConfigError

FILES = sorted(str(p.relative_to(SAMPLE_CONFIG)) for p in SAMPLE_CONFIG.rglob("*.yaml"))
ODD_VALUES = [None, True, False, 0, -1, 2**70, 1.5, float("inf"), "", "x" * 5000, "Mars/Olympus", "-nope,,",
              [], {}, [None], [[1]], {"a": {"b": []}}, dt.date(2026, 1, 31), "customer", "user", "string", "ref",
              {"type": "strng"}, "name__gt", "*"]
JUNK = ["\x00", "\x07", "\t", ": :", "- [", "{", "&a *a", "*missing", "!!python/name:os.system", "? [1]\n: 2",
        "\ufeff", "\u0085", "<<: 5", "---\n", "%YAML 1.1\n"]
ODD_KEYS = [1, 0, -7, True, False, None, 1.5, dt.date(2026, 1, 1), "", "Bad Key", "x" * 300, "__", "a.b", "*"]


@pytest.fixture(scope="module")
def sample_copy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "config"
    shutil.copytree(SAMPLE_CONFIG, root)
    return root


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a document (a mapping key or a list index per step)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, prefix + (index,))
    return found


def _parent(document: Any, path: tuple) -> Any:
    for step in path[:-1]:
        document = document[step]
    return document


def _mutate(data: st.DataObject, document: Any) -> Any:
    """One mutation of a document at a random place (the document itself may be replaced)."""
    paths = [p for p in _paths(document) if p]
    if not paths:
        return data.draw(st.sampled_from(ODD_VALUES))
    path = data.draw(st.sampled_from(paths))
    parent, step = _parent(document, path), path[-1]
    how = data.draw(st.sampled_from(["swap", "rename", "nest", "drop", "share", "grow"]))
    if how == "swap":
        parent[step] = data.draw(st.sampled_from(ODD_VALUES))
    elif how == "rename" and isinstance(parent, dict):
        parent[data.draw(st.sampled_from(ODD_KEYS))] = parent.pop(step)
    elif how == "nest":
        value = parent[step]
        for _ in range(data.draw(st.integers(1, 40))):
            value = data.draw(st.sampled_from([[value], {"x": value}]))
        parent[step] = value
    elif how == "drop":
        del parent[step]
    elif how == "share":  # yaml.dump writes an object met twice as an anchor and aliases
        other = data.draw(st.sampled_from(paths))
        if other[: len(path)] != path and path[: len(other)] != other:  # a tree still (cycles: test_config_limits)
            parent[step] = _parent(document, other)[other[-1]]
    elif how == "grow" and isinstance(parent[step], list):
        parent[step] = parent[step] * data.draw(st.integers(2, 50))
    return document


def _text(data: st.DataObject, source: str) -> str:
    """The file's new text: a mutated document, or its text truncated or with junk in it."""
    how = data.draw(st.sampled_from(["document", "document", "document", "truncate", "junk"]))
    if how == "truncate":
        return source[: data.draw(st.integers(0, len(source)))]
    if how == "junk":
        at = data.draw(st.integers(0, len(source)))
        junk = data.draw(st.sampled_from(JUNK))
        return source[:at] + junk + source[at:]
    documents = parse_fast(source)
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(documents) - 1))
        documents[index] = _mutate(data, documents[index])
    return yaml.safe_dump_all(documents, allow_unicode=True, sort_keys=False)


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_a_mutated_sample_config_gives_a_spec_or_located_problems(sample_copy, data):
    name = data.draw(st.sampled_from(FILES))
    path = sample_copy / name
    source = (SAMPLE_CONFIG / name).read_text(encoding="utf-8")
    try:
        path.write_text(_text(data, source), encoding="utf-8")
        try:
            load_config(sample_copy)
        except ConfigError as error:
            assert error.problems
            for problem in error.problems:
                assert problem.file and problem.line >= 1 and problem.column >= 1, problem
                assert len(str(problem)) < 1000, str(problem)[:200]
    finally:
        path.write_text(source, encoding="utf-8")
