"""Metrics of who an answer speaks to, and of answers that are not the user's text at all.

Pure functions of text, each defined in ``docs/evaluation.md`` and pinned by a table of answers
that must and must not count (``tests/eval/test_people_metrics.py``):

- :func:`greeted_names`: the names an answer greets or addresses;
- :func:`addresses_self`: it greets the user by their own name;
- :func:`wrong_recipient`: the request names a relation and the answer greets someone else;
- :func:`has_placeholder`: a bracketed slot such as ``[Your Name]``;
- :func:`is_refusal`: "I'm sorry, but I can't assist with that.";
- :func:`restates_request`: the answer is mostly the request said back;
- :func:`swaps_owner`: a text calls the reader's ("your pet") what the request calls the
  user's ("my pet");
- :func:`reads_out`: a text reads out two of the user's notes, one sentence after another;
- :func:`speaks_of_reader`: a text names its reader as someone else ("my sister Camila").
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from specsteer._opening import is_refusal
from specsteer._perspective import speaks_of_reader, swaps_owner
from specsteer._recital import reads_out

__all__ = [
    "addresses_self",
    "greeted_names",
    "has_placeholder",
    "is_refusal",
    "reads_out",
    "restates_request",
    "speaks_of_reader",
    "swaps_owner",
    "wrong_recipient",
]

#: Words that open a greeting ("Hi Lena", "Dear Ms Levi", "Happy birthday, Lena").
GREETINGS: Final = (
    "Good morning", "Good afternoon", "Good evening", "Happy birthday", "Hey there", "Hi there",
    "Hello there", "Dearest", "Dear", "Hiya", "Hello", "Hey", "Hi", "Greetings", "Morning",
)  # fmt: skip
_GREETING = "|".join(re.escape(g) for g in GREETINGS)
_TITLE = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?\s+"
_CAP_WORD = r"[^\W\d_a-z][\w'’-]*"
#: A name in a greeting: an optional title and up to two capitalised words, or a slot in brackets.
_NAME = rf"((?:{_TITLE})?{_CAP_WORD}(?:[ \t]+{_CAP_WORD})?|\[[^\]\n]{{1,40}}\])"
_GREETED = re.compile(rf"(?:^|(?<=[.!?\n]))[ \t]*(?i:{_GREETING})\b[ \t]*[,!]?[ \t]*{_NAME}")
#: A name opening the answer, as a vocative: "Lena,\n..." / "Maya, on March 14th ...".
_VOCATIVE = re.compile(rf"^\s*{_NAME}[ \t]*[,!—–]")
_COMMON_WORDS = (
    "i i'm the a an and but so this that it here there everyone all team everybody folks guys "
    "friend friends neighbour neighbor landlord landlady colleague sister brother mum mom dad "
    "partner love darling sir madam yes no ok okay sure well wow oh hmm perfect great absolutely "
    "certainly congratulations congrats however first also finally then unfortunately honestly "
    "anyway meanwhile otherwise instead afterwards thanks thank sorry please note subject tonight "
    "today tomorrow yesterday dinner breakfast lunch packing plan step ingredients morning evening "
    "hi hey hello hiya dear dearest greetings good happy cheers best love regards kind warm warmly "
    "sincerely yours hugs talk speak see take much lots many with ciao"
)
#: Capitalised words that open an answer or follow a greeting without being anyone's name.
_NOT_NAMES: Final = frozenset(_COMMON_WORDS.split())


def _fold(text: str) -> str:
    """Case, accents and spacing ignored: how two spellings of a name are compared."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


def _name_words(name: str) -> list[str]:
    """A name's words without a title or trailing punctuation."""
    words = [w.strip(".,!'’") for w in _fold(name).split()]
    return [w for w in words if w and w not in {"mr", "mrs", "ms", "miss", "mx", "dr", "prof"}]


def _clean(raw: str) -> str | None:
    """A matched name with common words cut from its end; None when nothing is left."""
    if raw.startswith("["):
        return raw
    words = raw.split()
    while words and _fold(words[-1]).strip(".'’") in _NOT_NAMES:
        words.pop()
    if not words or not words[0][0].isupper() or _fold(words[0]).strip(".'’") in _NOT_NAMES:
        return None
    return " ".join(words)


def greeted_names(answer: str) -> list[str]:
    """The names the answer greets or addresses, in order.

    A name counts when it follows a greeting (one of :data:`GREETINGS`, any case, optionally
    with a comma) at the start of the answer, a line or a sentence ("Hi Lena", "Dear Ms Levi",
    "Happy birthday, Lena"), or when it opens the answer followed by a comma, "!" or a dash
    ("Lena,\n..." / "Maya, on March 14th"). A name is an optional title and up to two
    capitalised words, or a bracketed slot ("[Friend's Name]"); common words ("there", "team",
    "Absolutely", "Dinner") are not names. A signature ("Cheers,\nMaya") greets nobody.
    """
    found: dict[int, str] = {}
    for m in (*_GREETED.finditer(answer), *_VOCATIVE.finditer(answer)):
        name = _clean(m.group(1))
        if name is not None:
            found[m.start(1)] = name
    return [found[at] for at in sorted(found)]


def _same_person(name: str, other: str) -> bool:
    """Whether two spellings name the same person: every word of the shorter one (titles left
    out, case and accents ignored) is a word of the longer one ("Ms Levi" and "Mrs Levi",
    "Maya" and "Maya Okafor")."""
    a, b = _name_words(name), _name_words(other)
    if not a or not b:
        return False
    short, long_ = sorted((a, b), key=len)
    return all(w in long_ for w in short)


def addresses_self(answer: str, writer: str) -> bool | None:
    """Whether the answer greets or addresses the user by their own name (see
    :func:`greeted_names`); None when the user's name is unknown."""
    if not writer.strip():
        return None
    return any(_same_person(name, writer) for name in greeted_names(answer))


def wrong_recipient(answer: str, recipient: str) -> bool | None:
    """Whether the answer greets someone other than the person the request names.

    The first name :func:`greeted_names` finds is the salutation; it is wrong when it is neither
    the recipient (:func:`addresses_self`'s comparison) nor a bracketed slot (counted by
    :func:`has_placeholder` instead). An answer that greets nobody is not wrong. None when the
    request names nobody (``recipient`` is empty).
    """
    if not recipient.strip():
        return None
    names = [n for n in greeted_names(answer) if not n.startswith("[")]
    return bool(names) and not _same_person(names[0], recipient)


#: A slot left for the user to fill: text in square brackets or braces with at least two
#: letters, or in angle brackets with a space in it; not a Markdown link, a checkbox or a number.
_PLACEHOLDER = re.compile(
    r"\[(?=[^\]\n]*[^\W\d_]{2})[^\[\]\n]{2,40}\](?!\()|\{(?=[^}\n]*[^\W\d_]{2})[^{}\n]{2,40}\}"
    r"|<[^\W\d_][^<>\n]*\s[^<>\n]*>"
)


def has_placeholder(answer: str) -> bool:
    """Whether the answer leaves a slot to fill: ``[Your Name]``, ``[Friend's Name]``,
    ``{name}``, ``<Your Name>`` (not ``[x]``, ``[1]``, ``[a link](url)`` or ``<b>``)."""
    return _PLACEHOLDER.search(answer) is not None


_WORD = re.compile(r"\w+")


def restates_request(answer: str, query: str, *, run: int = 4, share: float = 0.5) -> bool:
    """Whether the answer is mostly the request said back (parroting).

    A word of the answer is *restated* when it lies in a run of ``run`` or more consecutive
    words that also occur consecutively in the request (words are lower-cased ``\\w+`` runs;
    the run is the request's length when that is shorter). True when at least ``share`` of the
    answer's words are restated. An empty answer restates nothing.
    """
    words = _WORD.findall(answer.casefold())
    source = _WORD.findall(query.casefold())
    if not words or not source:
        return False
    n = min(run, len(source))
    grams = {tuple(source[i : i + n]) for i in range(len(source) - n + 1)}
    covered = [False] * len(words)
    for i in range(len(words) - n + 1):
        if tuple(words[i : i + n]) in grams:
            covered[i : i + n] = [True] * n
    return sum(covered) >= share * len(words)
