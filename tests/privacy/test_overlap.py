"""The n-gram overlap index: verbatim private text found across case and whitespace changes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specsteer.privacy import OverlapIndex, tokenize

MEMORY = (
    "My sister Margot keeps the spare key under the blue flowerpot by the shed door, "
    "and the alarm code is written on the back of the fuse box."
)


def _found(index: OverlapIndex, text: str) -> list[tuple[str, str]]:
    return [(text[s.start : s.end], s.entity) for s in index.find(text)]


def test_tokenize_is_lowercase_words_with_offsets() -> None:
    assert tokenize("Hi,  THERE\nyou") == [("hi", 0, 2), ("there", 5, 10), ("you", 11, 14)]


def test_canary_8gram_found_across_whitespace_case_and_punctuation() -> None:
    index = OverlapIndex(n=8)
    index.add([MEMORY])
    text = "Sure! The   SPARE key\nunder the Blue flowerpot, by the way."
    assert _found(index, text) == [
        ("The   SPARE key\nunder the Blue flowerpot, by the", "PRIVATE_TEXT")
    ]


def test_overlapping_hits_merge_into_one_span() -> None:
    index = OverlapIndex(n=8)
    index.add([MEMORY])
    copied = MEMORY[: MEMORY.index(" back")]  # "My sister ... written on the"
    text = f"so {copied} end"
    assert _found(index, text) == [(copied, "PRIVATE_TEXT")]


def test_seven_words_of_private_text_are_not_flagged() -> None:
    index = OverlapIndex(n=8)
    index.add([MEMORY])
    assert index.find("the spare key under the blue flowerpot") == []
    assert index.find("The weather in Paris is lovely in spring and museums open late.") == []


def test_short_private_text_is_matched_whole_and_distinctive_tokens_alone() -> None:
    index = OverlapIndex(n=8)
    index.add(["pin is 4821 always", "order SKU-88213 shipped"])
    text = "The PIN is 4821 always, ref sku-88213."
    assert _found(index, text) == [
        ("PIN is 4821 always", "PRIVATE_TEXT"),
        ("sku-88213", "PRIVATE_TOKEN"),
    ]
    # Common words from the same texts alone are not private.
    assert index.find("the order shipped, always") == []


def test_clear_and_configurable_n() -> None:
    index = OverlapIndex(n=3, min_short=0, min_token_chars=0)
    index.add(["alpha beta gamma delta"])
    assert len(index) == 1
    assert _found(index, "x beta gamma delta y") == [("beta gamma delta", "PRIVATE_TEXT")]
    index.clear()
    assert index.find("x beta gamma delta y") == [] and len(index) == 0


def _lines_run(fn: Callable[[], object]) -> int:
    """Lines of the privacy package's own code that ``fn()`` runs (a count, not a time: the
    same on a quiet machine and a loaded one)."""
    count = 0
    root = str(Path(str(sys.modules[OverlapIndex.__module__].__file__)).parent)

    def local(frame: FrameType, event: str, arg: object) -> Callable[..., object]:
        nonlocal count
        count += event == "line"
        return local

    def enter(frame: FrameType, event: str, arg: object) -> Callable[..., object] | None:
        return local if frame.f_code.co_filename.startswith(root) else None

    sys.settrace(enter)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


def test_scan_is_linear_in_payload_size() -> None:
    index = OverlapIndex()
    index.add(
        [
            f"memory number {i} about topic {i * 7} with detail {i * 13} and more"
            for i in range(2000)
        ]
    )

    def work(words: int) -> int:
        payload = "lorem ipsum dolor sit amet " * (words // 5)
        return _lines_run(lambda: index.find(payload) == [] or pytest.fail("found something"))

    # Four times the words: about four times the work (sixteen if it were quadratic).
    small, large = work(2_000), work(8_000)
    assert 2 * small < large < 8 * small


WORDS = st.lists(
    st.sampled_from(["red", "green", "blue", "cat", "dog", "sky", "sea", "sun"]),
    min_size=8,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(private=WORDS, start=st.integers(0, 22), spaces=st.sampled_from([" ", "  ", "\n", " \t "]))
def test_any_8_word_window_of_private_text_is_found(
    private: list[str], start: int, spaces: str
) -> None:
    index = OverlapIndex(n=8, min_short=0, min_token_chars=0)
    index.add([" ".join(private)])
    start = min(start, len(private) - 8)
    window = spaces.join(w.upper() for w in private[start : start + 8])
    text = f"prefix words {window} suffix"
    spans = index.find(text)
    assert spans, "an 8-word window of the private text must be found"
    lo = text.index(window)
    assert any(s.start <= lo and s.end >= lo + len(window) for s in spans)


def test_words_no_dictionary_lists_are_distinctive() -> None:
    index = OverlapIndex(n=8)
    index.add(["Maya Okafor lives on the Zuidplein near the marathon route with Lena."])
    text = "Dear Ms okafor, the marathon route passes the ZUIDPLEIN today."
    assert _found(index, text) == [("okafor", "PRIVATE_TOKEN"), ("ZUIDPLEIN", "PRIVATE_TOKEN")]
    # Dictionary words from the same text, their inflections, and short names are not tokens.
    assert index.find("the marathons passed near the route, running with lena") == []
    off = OverlapIndex(n=8, rare_words=False)
    off.add(["Maya Okafor lives on the Zuidplein"])
    assert off.find(text) == []


def test_dictionary_check_handles_inflections() -> None:
    from specsteer.privacy._words import is_dictionary_word

    for word in ("peanuts", "opens", "cooked", "running", "Berries", "Thursday"):
        assert is_dictionary_word(word), word
    for word in ("okafor", "zuidplein", "canaryghijk", "visser"):
        assert not is_dictionary_word(word), word
