"""Template filters of the search pages."""

from __future__ import annotations

import re

from django import template

register = template.Library()
_PREFIX = re.compile(r"^\d+[._\-\s]+")  # "001.Black_footed_Albatross" → "Black_footed_Albatross"


@register.filter
def humanize_label(label: str) -> str:
    """A label as people read it: its last path part, without a numeric prefix, underscores or dashes."""
    if not label:
        return ""
    name = _PREFIX.sub("", label.rstrip("/").rsplit("/", 1)[-1])
    return re.sub(r"[_\-]+", " ", name).strip() or label
