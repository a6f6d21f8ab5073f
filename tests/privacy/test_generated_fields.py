"""No field the protocol generates (request ids, vocabulary digests, draft offsets) can trigger a
detector: the guard screens the fields that can carry user text, and only those."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specsteer import PrivacyViolation
from specsteer.cloud_adapter import ChatMessage, Text, VerifyRequest
from specsteer.privacy import AuditLog, EgressGuard
from specsteer.privacy._detectors import default_detectors

MEMORIES = (
    "My card is 4111 1111 1111 1111 and my IBAN DE89 3704 0044 0532 0130 00.",
    "Call Ms Okafor on +44 20 7946 0958 about flat 4, Zuidplein 12.",
)
HEX_AS_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")


def _digits(ids: Sequence[int]) -> str:
    """A hostile decoder: token ids read as digits, so any id array it sees looks like a number."""
    return "".join(str(i) for i in ids)


def _guard() -> EgressGuard:
    guard = EgressGuard(audit_log=AuditLog(), allowed_types=(VerifyRequest,), decode_ids=_digits)
    guard.set_private_texts(MEMORIES)
    return guard


def _request(request_id: str, digest: str, cuts: list[int]) -> VerifyRequest:
    draft = "a" * cuts[-1]
    return VerifyRequest(
        request_id=request_id,
        tokenizer=digest,
        prompt=[ChatMessage(role="user", content="Write a note for the weekend.")],
        prefix=Text(text="Sure, here it is:"),
        draft=Text(text=draft, offsets=cuts),
        ctxfree_logprobs=[-1.0] * len(cuts),
    )


LETTER_IDS = st.from_regex(r"[a-p]{32}", fullmatch=True)
DIGESTS = st.from_regex(r"[a-p]{16,64}", fullmatch=True)
OFFSETS = st.lists(st.integers(1, 9), min_size=1, max_size=64).map(
    lambda steps: [sum(steps[: i + 1]) for i in range(len(steps))]
)


@settings(max_examples=100, deadline=None)
@given(request_id=LETTER_IDS, digest=DIGESTS, cuts=OFFSETS)
def test_generated_fields_never_stop_a_payload(
    request_id: str, digest: str, cuts: list[int]
) -> None:
    guard = _guard()
    sent: list[bytes] = []
    guard.send(_request(request_id, digest, cuts), "cloud", lambda d: sent.append(d) or b"{}")
    assert len(sent) == 1
    assert guard.report.detectors_fired == {}
    assert guard.report.token_ids_sent == 0  # offsets are not token ids


def test_a_hundred_thousand_request_ids_trigger_nothing() -> None:
    """Ids made as the engine makes them (128 random bits, hex written in letters), scanned by
    every detector and the overlap index of the memories above."""
    rng = random.Random(12)
    guard = _guard()
    detectors = default_detectors()
    for _ in range(100_000):
        request_id = f"{rng.getrandbits(128):032x}".translate(HEX_AS_LETTERS)
        assert not any(d.analyze(request_id) for d in detectors), request_id
        assert guard._index.find(request_id) == [], request_id


def test_user_text_smuggled_into_a_generated_field_is_still_scanned() -> None:
    guard = _guard()
    with pytest.raises(PrivacyViolation, match="CREDIT_CARD in request_id"):
        guard.send(_request("4111 1111 1111 1111", "abcdefghijklmnop", [3]), "cloud", bytes)
