"""One form of text for every scan: what looks the same to a reader is the same to the guard.

A private sentence must not pass because a soft hyphen or a zero-width space sits inside a
word, because three of its letters are Cyrillic look-alikes, or because it is typed in
full-width letters. :func:`fold` turns text into the form every detector and the overlap index
see, on the private texts and on the outbound text alike:

* NFKC compatibility normalisation, character by character: full-width letters and digits
  become ASCII ("ｌｉｓｂｏｎ" -> "lisbon"), "＠" becomes "@", ligatures split ("ﬁ" -> "fi"),
  non-breaking and other odd spaces become a plain space;
* format characters (Unicode category Cf: soft hyphen, zero-width space and joiners, word
  joiner, byte-order mark, bidirectional marks) and variation selectors are removed;
* Cyrillic and Greek letters that look like Latin ones are mapped to their Latin skeleton, as
  Unicode's confusables data maps them ("раssроrt" with Cyrillic р, а, о -> "passport").

Every folded character remembers where it came from, so a span found in the folded text maps
back to the exact characters of the original (:meth:`Folded.original`): the placeholder covers
what the user typed. Plain ASCII text is returned as it is, at no cost.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

__all__ = ["Folded", "fold"]

# Cyrillic and Greek letters whose glyphs are Latin ones (a subset of Unicode's confusables.txt:
# the look-alikes of the Latin alphabet in those two scripts, both cases).
_SKELETON = str.maketrans(
    {
        **dict(zip("аеорсухіјѕԁһԛԝӏүҽ", "aeopcyxijsdhqwlye", strict=True)),
        **dict(zip("АВЕКМНОРСТХУІЈЅԌԚԜӀҮ", "ABEKMHOPCTXYIJSGQWIY", strict=True)),
        **dict(zip("αοιυνκρτχεϳ", "aoiuvkptxej", strict=True)),
        **dict(zip("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "ABEZHIKMNOPTYX", strict=True)),
    }
)


def _dropped(ch: str) -> bool:
    """Characters a reader does not see: format characters and variation selectors."""
    code = ord(ch)
    return (
        unicodedata.category(ch) == "Cf" or 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF
    )


@dataclass(frozen=True)
class Folded:
    """Text in the scanning form, with the original index of each of its characters.

    Attributes:
        text: The folded text.
        source: The original text.
        origin: ``origin[j]`` is the index in ``source`` of folded character ``j``; one entry
            per folded character, empty when ``text is source`` (nothing changed).
    """

    text: str
    source: str
    origin: tuple[int, ...] = ()

    def original(self, start: int, end: int) -> tuple[int, int]:
        """The span of ``source`` that folded ``text[start:end]`` came from."""
        if not self.origin:
            return start, end
        if start >= end:
            at = self.origin[start] if start < len(self.origin) else len(self.source)
            return at, at
        return self.origin[start], self.origin[end - 1] + 1


def fold(text: str) -> Folded:
    """``text`` in the form every scan sees (see the module docstring)."""
    if text.isascii():
        return Folded(text, text)
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if ch.isascii():
            out.append(ch)
            origin.append(i)
            continue
        if _dropped(ch):
            continue
        for part in unicodedata.normalize("NFKC", ch).translate(_SKELETON):
            if not _dropped(part):
                out.append(part)
                origin.append(i)
    return Folded("".join(out), text, tuple(origin))
