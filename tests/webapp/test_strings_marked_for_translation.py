"""Issue 14: the pages' English strings are marked for translation ({% translate %} / {% blocktranslate %},
gettext in views), so a locale can be added without touching a template."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.template.base import Lexer, TokenType

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
PAGES = ["base.html", "404.html", "_too_many.html", "search", "feedback", "learning"]
NOT_WORDS = {"Refind", "NMI", "MAP", "Ctrl", "Esc", "Enter", "Recall"}  # names, abbreviations and key caps


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def untranslated_words(source: str) -> list[str]:
    """Words a page shows that are outside translation tags and comments (template tags and variables are blanked)."""
    pieces, inside = [], False
    for token in Lexer(source).tokenize():
        name = token.contents.split()[0] if token.token_type == TokenType.BLOCK and token.contents else ""
        inside = {"blocktranslate": True, "endblocktranslate": False, "comment": True, "endcomment": False}.get(
            name, inside)
        pieces.append(token.contents if token.token_type == TokenType.TEXT and not inside else " ")
    parser = _Text()
    parser.feed("".join(pieces))
    return [w for w in re.findall(r"[A-Za-zα]{2,}", " ".join(parser.text)) if w not in NOT_WORDS]


def _templates() -> list[Path]:
    found = []
    for name in PAGES:
        path = TEMPLATES / name
        found += sorted(path.rglob("*.html")) if path.is_dir() else [path]
    return found


@pytest.mark.parametrize("template", _templates(), ids=lambda path: str(path.relative_to(TEMPLATES)))
def test_every_visible_string_is_marked_for_translation(template: Path) -> None:
    assert untranslated_words(template.read_text()) == []


def test_the_check_finds_an_unmarked_string() -> None:
    assert untranslated_words("<p>{% translate 'Fine' %} Not marked <b>{{ name }}</b></p>") == ["Not", "marked"]
