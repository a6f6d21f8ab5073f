"""Is a word ordinary English? A dictionary check for the overlap index's rare-word signal.

A private word that no English dictionary lists (a surname, a street, a code word, a made-up
token) identifies its owner far more than an ordinary word does, so the overlap index treats it
as distinctive. An ordinary word wrongly taken for a rare one makes the guard keep ordinary
drafts on the device, so the check is generous with what English spells in more than one way:

* the word lists of the ``english-words`` package (Webster's Second International and GCIDE,
  about 260,000 lower-case words), loaded once on first use;
* inflections and derivations, by the Snowball English stemmer (``snowballstemmer``):
  "planning", "planned" and "plans" all stem to "plan";
* British spellings, rewritten to the American ones those lists favour ("harbour" -> "harbor",
  "realise" -> "realize", "centre" -> "center", "travelled" -> "traveled");
* accents dropped ("café" is "cafe");
* words newer than those dictionaries ("laptop", "email", "website") and the world's major
  cities, countries and regions ("Toronto", "Germany"; the dictionaries already list some, like
  "Paris" and "Munich"), from a short list shipped beside this module (``ordinary_words.json``).
  A neighbourhood, a street or a small town stays distinctive.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from pathlib import Path

__all__ = ["is_dictionary_word", "stem"]

_SUFFIXES = ("'s", "s", "es", "ed", "d", "ing", "ly", "er", "ers", "est", "ies")

# British -> American spelling rules; each is tried alone and all together.
_BRITISH = (
    (re.compile(r"(?<=\w)our(?=$|s$|ed$|ing$|ite|able|er|hood|less|ful|ist)"), "or"),
    (re.compile(r"(?<=\w[^aeiou])is(?=e$|es$|ed$|ing$|er$|ers$|ation)"), "iz"),
    (re.compile(r"ys(?=e$|es$|ed$|ing$|er$)"), "yz"),
    (re.compile(r"(?<=\w[^aeiou])tre(?=$|s$|d$)"), "ter"),
    (re.compile(r"ogue(?=$|s$)"), "og"),
    (re.compile(r"(?<=[aeiou][cf])ence(?=$|s$)"), "ense"),
    (re.compile(r"(?<=[aeiou])ll(?=ed$|ing$|er$|ers$|ery$|or$|ors$)"), "l"),
    (re.compile(r"(?<=\w)[ao]e(?=\w)"), "e"),
    (re.compile(r"mme(?=$|s$)"), "m"),
)


@functools.cache
def _words() -> frozenset[str]:
    from english_words import get_english_words_set

    extra = json.loads(Path(__file__).with_name("ordinary_words.json").read_text("utf-8"))
    listed = get_english_words_set(["web2", "gcide"], lower=True, alpha=True)
    return frozenset(listed) | {w.casefold() for w in (*extra["modern"], *extra["places"])}


@functools.cache
def _stem():  # type: ignore[no-untyped-def]
    import snowballstemmer

    return snowballstemmer.stemmer("english").stemWord


def stem(word: str) -> str:
    """The Snowball English stem of a lower-case word ("harbourviews" -> "harbourview")."""
    return str(_stem()(word))


def _listed(w: str, words: frozenset[str]) -> bool:
    """``w`` is listed, or a common suffix off it leaves a listed stem."""
    if w in words:
        return True
    for suffix in _SUFFIXES:
        if len(w) > len(suffix) + 2 and w.endswith(suffix):
            stem = w[: -len(suffix)]
            if stem in words or (suffix == "ies" and stem + "y" in words):
                return True
            if suffix in ("ed", "ing", "er", "est") and (stem + "e") in words:
                return True
    stem = _stem()(w)
    return stem in words or stem + "e" in words or (stem.endswith("i") and stem[:-1] + "y" in words)


def _american(w: str) -> set[str]:
    """American spellings of ``w`` by each British rule alone and all of them together."""
    variants = {rule.sub(repl, w) for rule, repl in _BRITISH}
    combined = w
    for rule, repl in _BRITISH:
        combined = rule.sub(repl, combined)
    return (variants | {combined}) - {w}


def _plain(w: str) -> str:
    """``w`` without accents: "café" is listed as "cafe"."""
    return "".join(c for c in unicodedata.normalize("NFKD", w) if not unicodedata.combining(c))


def is_dictionary_word(word: str) -> bool:
    """True when ``word`` (any case, any accents) is ordinary English: listed, an inflection or
    derivation of a listed word, or a British spelling of one."""
    w = _plain(word.casefold())
    words = _words()
    return _listed(w, words) or any(_listed(v, words) for v in _american(w))
