"""What every text field of the web app's API goes through: no NUL, and not blank once
whitespace, control and format characters (``U+200B``) are left out."""

from __future__ import annotations

import unicodedata

from specsteer._errors import InvalidInputError

__all__ = ["check_text"]


def _shows_nothing(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) in ("Cc", "Cf")


def check_text(value: str) -> str:
    """A text field's value, refused when it holds NUL or shows nothing.

    "Shows nothing" is blank once whitespace, control characters and format characters (the
    zero-width space ``U+200B``, ``U+FEFF``) are left out. As a pydantic validator, the error
    names the field.

    Raises:
        InvalidInputError: The text holds NUL, or shows nothing.
    """
    if "\x00" in value:
        raise InvalidInputError("it contains a NUL character (\\x00); remove it")
    if all(_shows_nothing(c) for c in value):
        raise InvalidInputError("it is empty; write something first")
    return value
