"""The gateway as OpenAI's own client sees it: completions, streams, errors, users, tokens."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from specsteer import Assistant
from specsteer.memory.testing import InMemoryStore

from .conftest import Gateway
from .echo import CANARIES, echo_models, memory_of

pytestmark = pytest.mark.timeout(120)

ASK = [{"role": "user", "content": "what is my locker code ?"}]


def in_process(user: str, messages: list[dict[str, str]], **overrides: Any) -> Any:
    """The same request answered by an assistant in this process (fresh models)."""
    device, cloud = echo_models()
    store = InMemoryStore()
    for who in CANARIES:
        store.add(who, memory_of(who))
    return Assistant(device, cloud, memory=store, user_id=user).generate(messages, **overrides)


def test_a_completion_is_the_assistants_answer_with_usage_and_figures(gateway: Gateway) -> None:
    reply = gateway.client().chat.completions.create(
        model="specsteer", messages=ASK, max_tokens=12, user="bob"
    )
    expected = in_process("bob", ASK, max_new_tokens=12)
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == expected.text
    assert choice.finish_reason == ("length" if expected.finish_reason == "length" else "stop")
    assert reply.object == "chat.completion" and reply.model == "specsteer"
    assert reply.usage is not None and reply.usage.completion_tokens == 12
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 12
    figures = reply.specsteer  # type: ignore[attr-defined]
    assert figures["user"] == "bob" and figures["method"] == "specsteer"
    assert figures["rounds"] == len(expected.stats.rounds)
    assert figures["payloads"] == len(gateway.cloud.received) > 0
    assert figures["bytes_sent"] == sum(len(w) for w in gateway.cloud.received)
    assert len(figures["audit_seqs"]) == figures["payloads"]
    assert figures["local_rounds"] >= 1 and figures["remembered"] == []


def test_a_stream_sends_the_same_answer_in_pieces(gateway: Gateway) -> None:
    stream = gateway.client().chat.completions.create(
        model="specsteer",
        messages=ASK,
        max_tokens=12,
        user="alice",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    expected = in_process("alice", ASK, max_new_tokens=12)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    text = "".join(d.content or "" for d in deltas)
    assert text == expected.text and CANARIES["alice"] in text
    assert len([d for d in deltas if d.content]) > 1  # pieces, not one block
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == "length"
    assert finals[0].specsteer["user"] == "alice"  # type: ignore[attr-defined]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12


def test_the_raw_stream_is_server_sent_events_ending_in_done(gateway: Gateway) -> None:
    body = {"model": "specsteer", "messages": ASK, "max_tokens": 4, "stream": True}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"


def test_the_user_field_or_header_selects_the_memories(gateway: Gateway) -> None:
    client = gateway.client()
    for user in CANARIES:
        other = next(u for u in CANARIES if u != user)
        reply = client.chat.completions.create(
            model="specsteer", messages=ASK, max_tokens=6, user=user
        )
        text = reply.choices[0].message.content or ""
        assert CANARIES[user] in text and CANARIES[other] not in text
    by_header = client.chat.completions.create(
        model="specsteer", messages=ASK, max_tokens=6, extra_headers={"X-SpecSteer-User": "bob"}
    )
    assert CANARIES["bob"] in (by_header.choices[0].message.content or "")
    default = client.chat.completions.create(model="specsteer", messages=ASK, max_tokens=6)
    assert CANARIES["alice"] in (default.choices[0].message.content or "")  # the default user
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="specsteer",
            messages=ASK,
            user="alice",
            extra_headers={"X-SpecSteer-User": "bob"},
        )
    assert e.value.body["param"] == "user"  # type: ignore[index]


def test_a_stop_sequence_ends_the_answer_before_it(gateway: Gateway) -> None:
    full = in_process("alice", ASK, max_new_tokens=12, ignore_eos=True).text
    stop = " " + full.split()[3]
    client = gateway.client()
    reply = client.chat.completions.create(
        model="specsteer", messages=ASK, max_tokens=12, stop=[stop], extra_body={"ignore_eos": True}
    )
    assert reply.choices[0].message.content == full[: full.index(stop)]
    assert reply.choices[0].finish_reason == "stop"
    figures = reply.specsteer  # type: ignore[attr-defined]
    assert figures["stopped_at"] == stop and figures["method"] == "specsteer"
    # The figures up to the stop: the rounds that wrote the answer, the payloads they sent.
    assert 1 <= figures["rounds"] <= 12 and figures["cloud_calls"] == figures["payloads"]
    assert figures["payloads"] == len(gateway.cloud.received) == len(figures["audit_seqs"])


def test_specsteer_settings_come_as_extra_body_fields(gateway: Gateway) -> None:
    reply = gateway.client().chat.completions.create(
        model="specsteer",
        messages=ASK,
        max_tokens=8,
        extra_body={"method": "device_only"},
    )
    figures = reply.specsteer  # type: ignore[attr-defined]
    assert figures["method"] == "device_only" and figures["payloads"] == 0
    assert gateway.cloud.received == []


def test_the_models_list_names_the_one_model(gateway: Gateway) -> None:
    client = gateway.client()
    assert [m.id for m in client.models.list()] == ["specsteer"]
    assert client.models.retrieve("specsteer").owned_by == "specsteer"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


BAD: list[tuple[dict[str, Any], int, str | None, str]] = [
    ({"model": "gpt-4o"}, 404, "model", "model_not_found"),
    ({"messages": []}, 400, "messages", "empty_array"),
    ({"messages": "hello"}, 400, "messages", "invalid_type"),
    ({"messages": [{"role": "user", "content": 5}]}, 400, "messages.[0].content", "invalid_type"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, 400, "messages.[0].role", None),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, 400, "messages", None),
    ({"messages": [{"role": "user", "content": "  "}]}, 400, "messages", None),
    (
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
        400,
        "messages.[0].content.[0].type",
        "unsupported_value",
    ),
    ({"messages": [{"role": "tool", "content": "x"}, *ASK]}, 400, "messages.[0].role", None),
    ({"max_tokens": "lots"}, 400, "max_tokens", "invalid_type"),
    ({"max_tokens": 0}, 400, "max_tokens", None),
    ({"max_tokens": 100_000}, 400, "max_tokens", None),
    ({"temperature": "hot"}, 400, "temperature", "invalid_type"),
    ({"temperature": 3}, 400, "temperature", None),
    ({"top_p": -0.1}, 400, "top_p", None),
    ({"stream_options": {"include_usage": True}}, 400, "stream_options", None),
    ({"messages": [{"role": "user", "content": "hi \ud800"}]}, 400, "messages.[0].content", None),
    ({"n": 2}, 400, "n", "unsupported_value"),
    ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop", None),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, 400, "tools", None),
    ({"logprobs": True}, 400, "logprobs", "unsupported_parameter"),
    ({"frobnicate": 1}, 400, "frobnicate", "unknown_parameter"),
    ({"lam": -1}, 400, "lam", "invalid_value"),
    ({"method": "magic"}, 400, "method", "invalid_value"),
    ({"model": None}, 400, "model", "invalid_type"),
]


@pytest.mark.parametrize(("change", "status", "param", "code"), BAD)
def test_a_bad_request_gets_openais_error_and_stores_nothing(
    make_gateway: Callable[..., Gateway],
    change: dict[str, Any],
    status: int,
    param: str | None,
    code: str | None,
) -> None:
    gateway = make_gateway(remember=True, max_tokens=512)
    told = [{"role": "user", "content": "i am in rome . what is my locker code ?"}]
    body = {"model": "specsteer", "messages": told, **change}
    raw = json.dumps(body)  # ASCII, so a lone surrogate goes as its JSON escape
    reply = httpx.post(
        gateway.url + "/v1/chat/completions",
        content=raw,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert reply.status_code == status
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    # Nothing was generated, sent or remembered.
    assert gateway.cloud.received == [] and gateway.device.prompts == []
    assert gateway.store.all_texts("alice") == [memory_of("alice")]


def test_a_body_nested_too_deeply_is_refused_and_the_connection_goes_on(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        deep = http.post(
            "/v1/chat/completions",
            content=b"[" * 200_000,
            headers={"content-type": "application/json"},
        )
        assert deep.status_code == 400 and deep.json()["error"]["code"] == "invalid_json"
        body = {"model": "specsteer", "messages": ASK, "max_tokens": 4}
        assert http.post("/v1/chat/completions", json=body).status_code == 200


def test_a_body_over_the_limit_is_a_413_and_the_connection_goes_on(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(max_body_bytes=4096)
    big = json.dumps({"model": "specsteer", "messages": ASK, "pad": "x" * 8192}).encode()

    def pieces() -> Iterator[bytes]:  # no content-length: counted as it arrives
        for at in range(0, len(big), 1024):
            yield big[at : at + 1024]

    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        for content in (big, pieces()):
            reply = http.post("/v1/chat/completions", content=content, headers=headers)
            assert reply.status_code == 413, reply.text
            assert reply.json()["error"]["code"] == "request_too_large"
        body = {"model": "specsteer", "messages": ASK, "max_tokens": 2}
        assert http.post("/v1/chat/completions", json=body).status_code == 200


ACCEPTED: list[dict[str, Any]] = [
    {"safety_identifier": "u-1", "prompt_cache_key": "k", "prompt_cache_retention": "24h"},
    {"verbosity": "low", "moderation": None},
    {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none"},
    {"seed": -1},
]


@pytest.mark.parametrize("change", ACCEPTED)
def test_fields_that_ask_for_nothing_the_device_lacks_are_accepted(
    gateway: Gateway, change: dict[str, Any]
) -> None:
    body = {"model": "specsteer", "messages": ASK, "max_tokens": 4, **change}
    reply = httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["completion_tokens"] == 4


def test_top_p_zero_is_the_greedy_answer(gateway: Gateway) -> None:
    client = gateway.client()
    answers = [
        client.chat.completions.create(model="specsteer", messages=ASK, max_tokens=8, **sampling)
        for sampling in ({"top_p": 0, "temperature": 1.0}, {"temperature": 0})
    ]
    assert answers[0].choices[0].message.content == answers[1].choices[0].message.content


def test_a_request_longer_than_a_memory_is_answered(gateway: Gateway) -> None:
    # Longer than the memory store takes in one text (8000 characters): the memories are
    # searched with its start.
    long_ask = [{"role": "user", "content": "what is my locker code ? " * 900}]
    for stream in (False, True):
        answer = gateway.client().chat.completions.create(
            model="specsteer", messages=long_ask, max_tokens=4, user="alice", stream=stream
        )
        if stream:
            chunks = list(answer)
            assert chunks[-1].choices[0].finish_reason == "length"
        else:
            assert answer.usage is not None and answer.usage.completion_tokens == 4


def test_a_stream_with_usage_has_it_null_until_the_last_chunk(gateway: Gateway) -> None:
    body = {
        "model": "specsteer",
        "messages": ASK,
        "max_tokens": 4,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body) as r:
        events = [line.removeprefix("data: ") for line in r.iter_lines() if line]
    chunks = [json.loads(e) for e in events[:-1]]
    assert all("usage" in c for c in chunks)
    assert [c["usage"] is None for c in chunks] == [True] * (len(chunks) - 1) + [False]


def test_the_official_client_raises_its_own_error_types(gateway: Gateway) -> None:
    client = gateway.client()
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=ASK)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as empty:
        client.chat.completions.create(model="specsteer", messages=[])
    assert empty.value.param == "messages"


def test_a_token_is_required_when_the_gateway_has_one(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(token="s3cret-token")
    with pytest.raises(openai.AuthenticationError) as e:
        gateway.client(api_key="wrong").models.list()
    assert e.value.code == "invalid_api_key"
    assert e.value.response.headers["www-authenticate"] == "Bearer"
    assert [m.id for m in gateway.client(api_key="s3cret-token").models.list()] == ["specsteer"]


def test_other_hosts_pages_of_other_sites_and_forms_are_refused(
    make_gateway: Callable[..., Gateway],
) -> None:
    hosts: set[str] = set()
    gateway = make_gateway(hosts=hosts)
    hosts.add(gateway.url.removeprefix("http://"))  # filled in once the port is known
    url = gateway.url + "/v1/chat/completions"
    body = {"model": "specsteer", "messages": ASK}
    assert (
        httpx.get(gateway.url + "/v1/models", headers={"host": "evil.example"}).status_code == 421
    )
    page = httpx.post(url, json=body, headers={"origin": "http://evil.example"})
    assert page.status_code == 403 and page.json()["error"]["type"] == "invalid_request_error"
    form = httpx.post(url, content=b"model=specsteer", headers={"content-type": "text/plain"})
    assert form.status_code == 415
    raw = json.dumps({**body, "max_tokens": 2})
    for kind, status in (("application/json-seq", 415), ("Application/JSON; charset=utf-8", 200)):
        reply = httpx.post(url, content=raw, headers={"content-type": kind}, timeout=30)
        assert reply.status_code == status, (kind, reply.text)


def test_a_memory_told_in_one_request_steers_a_later_one_and_never_leaves(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(remember=True)
    client = gateway.client()
    canary = "canary4h8s2d"  # alice's canary, told by a new user
    told = client.chat.completions.create(
        model="specsteer",
        messages=[{"role": "user", "content": f"my locker code is {canary} . what is the plan ?"}],
        max_tokens=6,
        user="carol",
    )
    stored = f"My locker code is {canary} ."
    assert told.specsteer["remembered"] == [stored]  # type: ignore[attr-defined]
    assert gateway.store.all_texts("carol") == [stored]
    later = client.chat.completions.create(
        model="specsteer", messages=ASK, max_tokens=6, user="carol"
    )
    assert canary in (later.choices[0].message.content or "")
    assert later.specsteer["remembered"] == []  # type: ignore[attr-defined]
    assert gateway.cloud.received and all(canary.encode() not in w for w in gateway.cloud.received)
