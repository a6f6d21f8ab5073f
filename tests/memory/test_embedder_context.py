"""The embedder seam, the bundled MiniLM, the context builder, and the public surface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import specsteer.memory as memory
from specsteer._errors import InvalidInputError
from specsteer.memory import (
    ContextBlock,
    Embedder,
    HashEmbedder,
    Memory,
    SearchHit,
    SentenceTransformerEmbedder,
    build_context,
    bundled_minilm_path,
)


def test_public_api_is_deliberate() -> None:
    assert sorted(memory.__all__) == sorted(
        [
            "EXPORT_FORMAT",
            "KEEP",
            "RELATIONS",
            "BaseMemoryStore",
            "ContextBlock",
            "CorruptedMemoryError",
            "Embedder",
            "HashEmbedder",
            "Inference",
            "Memory",
            "MemoryInput",
            "MemoryNotFoundError",
            "MemoryStore",
            "MetadataValue",
            "Person",
            "Persona",
            "PersonaView",
            "SearchHit",
            "SentenceTransformerEmbedder",
            "Statements",
            "UserForgottenError",
            "UserKeyMissingError",
            "UserNotFoundError",
            "build_context",
            "bundled_minilm_path",
            "export_memories",
            "import_memories",
            "infer_persona",
            "personal_statements",
            "split_statements",
            "ingest_notes",
            "ingest_transcript",
        ]
    )
    for name in memory.__all__:
        assert getattr(memory, name) is not None
    from specsteer.memory import testing

    assert testing.__all__ == ["InMemoryStore"]
    assert issubclass(testing.InMemoryStore, memory.BaseMemoryStore)
    assert issubclass(memory.MemoryStore, memory.BaseMemoryStore)


def test_hash_embedder_is_deterministic_normalized_and_meaningful() -> None:
    emb = HashEmbedder(dim=128)
    v = emb.embed(["I love green tea", "i LOVE green tea!", "tax return deadline", "..."])
    assert v.shape == (4, 128) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(
        v,
        HashEmbedder(dim=128).embed(
            ["I love green tea", "i LOVE green tea!", "tax return deadline", "..."]
        ),
    )
    assert v[0] @ v[1] > 0.99
    assert v[0] @ v[2] < 0.3
    assert emb.embed_one("green tea") @ v[0] > emb.embed_one("tax deadline") @ v[0]
    assert emb.dim == 128


def test_custom_embedder_goes_through_the_seam(specsteer_home: Path) -> None:
    class Constant(Embedder):
        name = "constant-8"

        def embed(self, texts):  # type: ignore[no-untyped-def]
            out = np.zeros((len(texts), 8), dtype=np.float32)
            out[:, 0] = 1.0
            return out

    from specsteer.memory import MemoryStore

    assert Constant().dim == 8
    store = MemoryStore(embedder=Constant())
    store.add("alice", "anything")
    assert store.search("alice", "whatever")[0].score == pytest.approx(1.0)


def _hit(text: str, score: float) -> SearchHit:
    return SearchHit(Memory(id=text[:8].ljust(8, "x"), text=text), score)


def words(s: str) -> int:
    return len(s.split())


def test_context_block_most_relevant_first_within_budget() -> None:
    hits = [
        _hit("likes jazz and blues", 0.2),
        _hit("allergic to peanuts", 0.9),
        _hit("lives in Oslo", 0.5),
    ]
    block = build_context(hits, budget_tokens=100, count_tokens=words, header="Notes:")
    assert block.text == "Notes:\n- allergic to peanuts\n- lives in Oslo\n- likes jazz and blues"
    assert [h.score for h in block.hits] == [0.9, 0.5, 0.2]
    assert block.tokens == words(block.text)


def test_context_block_skips_what_does_not_fit_and_fills_with_smaller() -> None:
    long = _hit("a very long memory " * 10, 0.95)
    hits = [long, _hit("allergic to peanuts", 0.9), _hit("lives in Oslo", 0.5)]
    block = build_context(hits, budget_tokens=9, count_tokens=words, header="Notes:")
    assert block.text == "Notes:\n- allergic to peanuts\n- lives in Oslo"
    assert block.tokens <= 9
    assert block.dropped == (long,)


def test_context_block_edges() -> None:
    assert build_context([], budget_tokens=10, count_tokens=words) == ContextBlock("", (), (), 0)
    tiny = build_context([_hit("x y z", 1.0)], budget_tokens=1, count_tokens=words)
    assert tiny.text == "" and tiny.hits == () and len(tiny.dropped) == 1
    custom = build_context(
        [_hit("tea", 0.5)],
        budget_tokens=10,
        count_tokens=words,
        header="",
        item_format="* {text} ({score:.1f})",
    )
    assert custom.text == "* tea (0.5)"
    with pytest.raises(InvalidInputError):
        build_context([], budget_tokens=-1, count_tokens=words)


@pytest.mark.integration
def test_minilm_ranks_related_sentences_higher(specsteer_home: Path) -> None:
    path = bundled_minilm_path()
    assert path.is_relative_to(specsteer_home) and (path / "model.safetensors").exists()
    emb = SentenceTransformerEmbedder()
    v = emb.embed(
        [
            "I am allergic to peanuts.",
            "Nut allergies can cause severe reactions.",
            "The stock market closed higher today.",
            "My dog loves playing fetch in the park.",
            "Puppies enjoy chasing balls outside.",
        ]
    )
    assert v.shape == (5, 384) and emb.dim == 384
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    sim = v @ v.T
    assert sim[0, 1] > sim[0, 2] + 0.2
    assert sim[3, 4] > sim[3, 2] + 0.2
    # Extracted once: a second call reuses the folder.
    assert bundled_minilm_path() == path
    from specsteer.memory import MemoryStore

    store = MemoryStore(embedder=emb)
    store.add_many("alice", ["I am allergic to peanuts.", "The stock market closed higher today."])
    assert store.search("alice", "nut allergy", k=1)[0].text == "I am allergic to peanuts."
