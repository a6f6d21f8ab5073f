"""Is a word ordinary English? A dictionary check for the overlap index's rare-word signal.

A private word that no English dictionary lists (a surname, a street, a code word, a made-up
token) identifies its owner far more than an ordinary word does, so the overlap index treats it
as distinctive. The word lists come from the ``english-words`` package (Webster's Second
International and GCIDE, about 260,000 lower-case words), loaded once on first use.
"""

from __future__ import annotations

import functools

__all__ = ["is_dictionary_word"]

_SUFFIXES = ("'s", "s", "es", "ed", "d", "ing", "ly", "er", "ers", "est", "ies")


@functools.cache
def _words() -> frozenset[str]:
    from english_words import get_english_words_set

    return frozenset(get_english_words_set(["web2", "gcide"], lower=True, alpha=True))


def is_dictionary_word(word: str) -> bool:
    """True when ``word`` (any case), or its stem after a common English suffix, is listed."""
    w = word.casefold()
    words = _words()
    if w in words:
        return True
    for suffix in _SUFFIXES:
        if len(w) > len(suffix) + 2 and w.endswith(suffix):
            stem = w[: -len(suffix)]
            if stem in words or (suffix == "ies" and stem + "y" in words):
                return True
            if suffix in ("ed", "ing", "er", "est") and (stem + "e") in words:
                return True
    return False
