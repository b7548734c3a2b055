"""Input grammars, shared by the server and the OpenAPI document: phones,
emails, URLs, dates and moments, region codes, names, decimals."""

from __future__ import annotations

import re

# Input grammars, shared by the server and the OpenAPI document: explicit
# character classes only, so Python and JSON Schema (ECMA-262) read them alike.
PHONE_MOBILE = re.compile(r"^(?:(?:\+86|0086)[ -]?)?1[3-9][0-9][ -]?[0-9]{4}[ -]?[0-9]{4}$")
PHONE_LANDLINE = re.compile(
    r"^(0(?:10|2[0-9]|[3-9][0-9]{2})[ -]?|\(0(?:10|2[0-9]|[3-9][0-9]{2})\) ?|（0(?:10|2[0-9]|[3-9][0-9]{2})）)"
    r"([0-9]{7,8})(?:-([0-9]{1,6}))?$")
PHONE_SERVICE = re.compile(r"^[48]00[ -]?[0-9]{3}[ -]?[0-9]{4}$")
EMAIL = re.compile(r"^[^@\x00-\x20\x7f]+@[^@\x00-\x20\x7f.]+(?:\.[^@\x00-\x20\x7f.]+)+$")
URL = re.compile(r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\x00-\x20\x7f]+(?:[/?#][^\x00-\x20\x7f]*)?$")
DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
#: RFC 3339 (JSON Schema's date-time): seconds and an offset are required.
DATE_TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
                       r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$")
REGION_CODE = re.compile(r"^[0-9]{6}$")
NO_NUL = "^[^\\x00]*$"
#: What Python's str.strip() or JSON Schema's \\s counts as blank, and control characters.
BLANK = "\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
#: A name: something besides blanks, no NUL (as the server checks with NAMED).
NAME_TEXT = f"^[^\\x00]*[^{BLANK}][^\\x00]*$"
NAMED = re.compile(NAME_TEXT)
#: A decimal as a JSON string: plain digits and a point (the field's pattern narrows it).
PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
#: A decimal in a query string (filters, cursors): an exponent is fair there.
DECIMAL_TEXT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]+)?)(?:[eE][+-]?[0-9]{1,6})?")
