"""Checking documents twice, structurally (JSON Schema) and semantically, into an AppSpec.

Every problem is collected with its file, line and column; nothing is raised
until the end, so ``crmkit check`` reports them all at once.
"""

from .builder import SINGLE_DOCUMENT_KINDS, build_spec
from .entities import INDEX_NAME_LIMIT
from .roles import ADMIN_ROLE, ALWAYS_VISIBLE, PLATFORM_ENTITIES, SYSTEM_ROLE
from .structure import check_structure

__all__ = ["ADMIN_ROLE", "ALWAYS_VISIBLE", "INDEX_NAME_LIMIT", "PLATFORM_ENTITIES", "SINGLE_DOCUMENT_KINDS",
           "SYSTEM_ROLE", "build_spec", "check_structure"]
