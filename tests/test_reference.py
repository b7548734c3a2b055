"""The metadata language is a public API: every key documented, the reference page current."""

from pathlib import Path

from crmkit.metadata.reference import render, undocumented

ROOT = Path(__file__).resolve().parent.parent


def test_every_schema_key_has_a_description():
    assert undocumented() == []


def test_reference_page_is_generated_from_the_current_schemas():
    committed = (ROOT / "metadata" / "reference.md").read_text(encoding="utf-8")
    assert committed == render(), "run: python -m crmkit.metadata.reference > metadata/reference.md"
