"""The guard's false alarms on ordinary English, with a realistic memory set loaded."""

from __future__ import annotations

import pytest
from false_alarms import dataset_memories, false_alarm_rate, ordinary_sentences

from specsteer.privacy._words import is_dictionary_word


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    return ordinary_sentences()


def test_corpus_is_a_few_thousand_distinct_sentences_the_same_every_run(
    sentences: list[str],
) -> None:
    assert len(sentences) == len(set(sentences)) == 3000
    assert ordinary_sentences(50) == sentences[:50]


def test_fewer_than_one_in_a_hundred_ordinary_sentences_is_flagged(sentences: list[str]) -> None:
    memories = [t for texts in dataset_memories().values() for t in texts]
    assert len(memories) > 500  # all 42 users at once: a superset of any one user's memories
    result = false_alarm_rate(sentences, memories)
    assert result.total == 3000
    assert result.rate < 0.01, (result.entities, [sentences[i] for i in result.flagged[:10]])


def test_the_measurement_sees_private_text_when_there_is_some(sentences: list[str]) -> None:
    """The rate can fail: sentences that are memories, and numbers from them, are flagged."""
    memories = [*sentences[:40], "my account number is 0532 0130 0099"]
    probe = [*sentences[:60], "please pay into 05320130 0099 today"]
    result = false_alarm_rate(probe, memories)
    assert set(result.flagged) == {*range(40), 60}
    assert set(result.entities) == {"PRIVATE_TEXT", "PRIVATE_TOKEN"}


@pytest.mark.parametrize(
    "word",
    [
        "planning", "planned", "harbour", "harbours", "travelling", "cancelled", "realised",
        "favourite", "behaviour", "centre", "organisation", "analysed", "jewellery",
        "neighbourhood", "programme", "defence", "laptops", "podcasts", "café", "Toronto",
        "Germany",
    ],
)  # fmt: skip
def test_inflections_british_spellings_and_modern_words_are_ordinary(word: str) -> None:
    assert is_dictionary_word(word)


@pytest.mark.parametrize(
    "word", ["okafor", "zuidplein", "haidhausen", "canaryghijk", "visser", "Koenji", "jollof"]
)
def test_surnames_streets_and_code_words_stay_rare(word: str) -> None:
    assert not is_dictionary_word(word)
