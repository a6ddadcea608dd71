"""Strict parsing of numbers from query strings and forms: ASCII digits within the database's range, or None.

`str.isdigit()` accepts "²" (which `int()` refuses) and `int()` accepts "٣" and 30-digit numbers (which the
database refuses): either was a 500. Views answer None with a 400 (or treat it as absent)."""

from __future__ import annotations

import re

MAX_ID = 2**63 - 1  # a 64-bit primary key
_WHOLE = re.compile(r"-?[0-9]{1,19}")


def whole_number(value: object, *, minimum: int = 0, maximum: int = MAX_ID) -> int | None:
    """`value` as an int when it is an ASCII whole number in [minimum, maximum], else None."""
    if not isinstance(value, str) or not _WHOLE.fullmatch(value.strip()):
        return None
    number = int(value.strip())
    return number if minimum <= number <= maximum else None
