"""The async API: pieces that join to the answer, one answer at a time in arrival order, a given-up
answer that frees its place, stop sequences."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from specsteer import Assistant, InvalidInputError
from specsteer._events import Exchange, Round, Tokens
from specsteer._streaming import AnswerQueue, AnswerText, token_pieces
from specsteer.backends import TransformersBackend
from specsteer.testing import tiny_backend

pytestmark = pytest.mark.timeout(120)

QUERY = "what is my plan for friday ?"


def assistant(**kwargs: Any) -> Assistant:
    return Assistant.in_process(tiny_backend(0), tiny_backend(1), **kwargs)


def test_pieces_join_to_the_answer_and_carry_its_tokens() -> None:
    eos = tiny_backend(0).eos_token_ids
    expected = assistant().generate(QUERY, context="dinner in rome", max_new_tokens=24)

    async def stream() -> tuple[list[Any], Any]:
        s = assistant().astream(QUERY, context="dinner in rome", max_new_tokens=24)
        return [p async for p in s], s.result

    pieces, result = asyncio.run(stream())
    assert len(pieces) > 1  # streamed, not one block at the end
    assert "".join(p.text for p in pieces) == result.text == expected.text
    ids = [t for p in pieces for t in p.token_ids]
    assert ids == [t for t in result.token_ids if t not in eos]


def test_agenerate_answers_as_generate_does() -> None:
    expected = assistant().generate(QUERY, max_new_tokens=16, lam=0.3)
    got = asyncio.run(assistant().agenerate(QUERY, max_new_tokens=16, lam=0.3))
    assert got.text == expected.text and got.token_ids == expected.token_ids
    assert got.stats.method == "specsteer" and got.privacy is not None


def test_answers_run_one_at_a_time_in_arrival_order() -> None:
    queue = AnswerQueue()
    gate = threading.Event()
    ran: list[int] = []
    running: list[int] = []

    def job(i: int) -> Any:
        def run(_cancel: threading.Event) -> int:
            running.append(i)
            assert len(running) == 1, "two answers ran at once"
            if i == 0:
                gate.wait(10)
            ran.append(i)
            running.remove(i)
            return i

        return run

    async def main() -> list[int]:
        tickets = [queue.submit(job(i)) for i in range(6)]
        tickets[3].cancel()  # a client gives up while it waits
        gate.set()
        done = await asyncio.gather(*(t.result() for t in tickets), return_exceptions=True)
        assert isinstance(done[3], asyncio.CancelledError)
        return [d for d in done if isinstance(d, int)]

    assert asyncio.run(main()) == [0, 1, 2, 4, 5]
    assert ran == [0, 1, 2, 4, 5]  # the one given up never ran
    queue.close()


def counting(backend: TransformersBackend) -> list[int]:
    """Count the token positions the backend computes (every pass goes through
    ``forward_tail``)."""
    computed = [0]
    forward_tail = backend.forward_tail

    def spy(ids: Sequence[int], cache: Any, rows: int) -> Any:
        computed[0] += len(ids)
        return forward_tail(ids, cache, rows)

    backend.forward_tail = spy  # type: ignore[method-assign]
    return computed


def test_an_answer_given_up_mid_stream_ends_and_frees_the_queue() -> None:
    device = tiny_backend(0)
    computed = counting(device)
    a = Assistant.in_process(device, tiny_backend(1))
    long = {"max_new_tokens": 2000, "ignore_eos": True, "method": "device_only"}

    async def main() -> Any:
        first = a.astream(QUERY, **long)
        got = [await first.__anext__(), await first.__anext__()]
        assert all(p.text for p in got)
        first.cancel()
        second = await asyncio.wait_for(a.agenerate(QUERY, max_new_tokens=8), 60)
        return first, second

    first, second = asyncio.run(main())
    assert first.result is None and second.stats.new_tokens >= 1
    # The first answer stopped within a round or two of being given up, far from its 2000.
    assert 0 < computed[0] < 600


def test_a_stop_sequence_ends_the_answer_before_it() -> None:
    full = assistant().generate(QUERY, max_new_tokens=24, ignore_eos=True).text
    words = full.split()
    stop = " " + words[len(words) // 2]
    expected = full[: full.index(stop)]

    async def main() -> Any:
        s = assistant().astream(QUERY, max_new_tokens=24, ignore_eos=True, stop=[stop, "zzz"])
        text = "".join([p.text async for p in s])
        return s, text

    s, text = asyncio.run(main())
    assert text == s.text == expected
    assert s.result is None and s.stopped_at == stop
    assert s.cut is not None and s.cut.privacy.payloads >= 1
    # Its figures are those of the rounds up to the stop.
    assert 0 < len(s.cut.stats.rounds) <= 24 and s.cut.stats.method == "specsteer"
    assert s.cut.stats.cloud_calls == s.cut.privacy.payloads


def test_an_empty_stop_sequence_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        assistant().astream(QUERY, stop=[""])


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        # leading and trailing spaces wait (the answer is stripped)
        ([["  hello "], ["wor"], ["ld!"]], ["hello", " wor", "ld!"]),
        # a placeholder is handed out only once it is closed and restored
        ([["call [PHO"], ["NE_1] now"]], ["call", " +31 6 now"]),
        # the start of a stop sequence waits; the stop itself never comes out
        ([["one two ST"], ["OP three"]], ["one two", ""]),
    ],
)
def test_text_is_handed_out_once_it_cannot_change(
    tokens: list[list[str]], expected: list[str]
) -> None:
    """Hand-made decoding: each token id stands for one string."""
    vocab = [s for batch in tokens for s in batch]
    text = AnswerText(
        lambda ids: "".join(vocab[i] for i in ids),
        lambda t: t.replace("[PHONE_1]", "+31 6"),
        stop=[" STOP"],
    )
    out: list[str] = []
    i = 0
    for batch in tokens:
        ids = list(range(i, i + len(batch)))
        i += len(batch)
        out.append("".join(p.text for p in token_pieces(text, Tokens(tuple(ids), "device"))))
    assert out == expected


def test_only_tokens_make_pieces_and_end_tokens_are_not_text() -> None:
    text = AnswerText(lambda ids: " ".join(f"w{i}" for i in ids), str, eos=frozenset({9}))
    assert token_pieces(text, Round(drafted=(1, 2), accepted=1, recovered=True)) == []
    assert token_pieces(text, Exchange(bytes_sent=10, bytes_received=5, seconds=0.1)) == []
    (piece,) = token_pieces(text, Tokens((1, 2, 9), "accepted"))
    assert piece.text == "w1 w2" and piece.token_ids == (1, 2)


def test_views_for_users_share_the_models_but_not_memories_or_placeholders() -> None:
    from specsteer.memory.testing import InMemoryStore

    store = InMemoryStore()
    store.add("alice", "dinner in rome on friday")
    a = assistant(memory=store, user_id="alice")
    alice, bob = a.for_user("alice"), a.for_user("bob")
    assert alice.decoder is bob.decoder is a.decoder and bob.user_id == "bob"
    assert alice.retrieve("friday") and bob.retrieve("friday") == ""
    alice.generate("call me at +31 6 1234 5678 about friday", max_new_tokens=4)
    assert a.egress is not None and a.egress.restore("[PHONE_1]") != "[PHONE_1]"
    bob.generate("what is my plan ?", max_new_tokens=4)
    # Bob's answer can never have alice's number restored into it.
    assert a.egress.restore("[PHONE_1]") == "[PHONE_1]"


def test_for_user_needs_a_store_and_a_valid_user_id() -> None:
    from specsteer import ConfigurationError
    from specsteer.memory.testing import InMemoryStore

    with pytest.raises(ConfigurationError):
        assistant().for_user("bob")
    with pytest.raises(InvalidInputError):
        assistant(memory=InMemoryStore(), user_id="alice").for_user("")


def test_a_cancelled_agenerate_ends_its_generation() -> None:
    device = tiny_backend(0)
    computed = counting(device)
    a = Assistant.in_process(device, tiny_backend(1))
    long = {"max_new_tokens": 2000, "ignore_eos": True, "method": "device_only"}

    async def main() -> Any:
        task = asyncio.ensure_future(a.agenerate(QUERY, **long))
        while computed[0] < 40:  # it is generating
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await asyncio.wait_for(a.agenerate(QUERY, max_new_tokens=4), 60)

    assert asyncio.run(main()).stats.new_tokens >= 1
    assert computed[0] < 600


def test_a_stream_ends_once_exhausted_or_given_up() -> None:
    a = assistant()

    async def main() -> tuple[list[Any], list[Any], list[Any]]:
        done = a.astream(QUERY, max_new_tokens=4)
        first = [p async for p in done]
        again = [p async for p in done]  # exhausted: ends at once
        given_up = a.astream(QUERY, max_new_tokens=4)
        given_up.cancel()
        never = [p async for p in given_up]  # given up before it started: never runs
        return first, again, never

    first, again, never = asyncio.run(main())
    assert first and again == [] and never == []
