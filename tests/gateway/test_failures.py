"""When the answer fails on the device, or the client stops waiting for a whole completion."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx
import openai
import pytest

from .conftest import Gateway

pytestmark = pytest.mark.timeout(120)

ASK = [{"role": "user", "content": "what is my locker code ?"}]


def failing_after(gateway: Gateway, calls: int) -> None:
    """Make the device model fail from its ``calls``-th forward pass on."""
    forward = gateway.device.base.forward
    seen = [0]

    def fail(ids: Sequence[int], cache: Any) -> Any:
        seen[0] += 1
        if seen[0] >= calls:
            raise RuntimeError("the device model broke (with private text: canary4h8s2d)")
        return forward(ids, cache)

    gateway.device.base.forward = fail  # type: ignore[method-assign]
    gateway.device.restore = lambda: setattr(gateway.device.base, "forward", forward)  # type: ignore[attr-defined]


def test_a_failure_is_a_500_in_openais_shape_and_the_gateway_goes_on(gateway: Gateway) -> None:
    failing_after(gateway, 3)
    reply = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "specsteer", "messages": ASK, "max_tokens": 8},
        timeout=60,
    )
    assert reply.status_code == 500
    error = reply.json()["error"]
    assert error["type"] == "server_error" and "canary" not in reply.text
    gateway.device.restore()  # type: ignore[attr-defined]
    after = gateway.client().chat.completions.create(model="specsteer", messages=ASK, max_tokens=4)
    assert after.usage is not None and after.usage.completion_tokens == 4


def test_a_failure_leaves_the_connection_open_for_the_next_request(gateway: Gateway) -> None:
    failing_after(gateway, 3)
    body = {"model": "specsteer", "messages": ASK, "max_tokens": 8}
    with httpx.Client(base_url=gateway.url, timeout=60) as http:
        assert http.post("/v1/chat/completions", json=body).status_code == 500
        gateway.device.restore()  # type: ignore[attr-defined]
        assert http.post("/v1/chat/completions", json=body).status_code == 200


def test_a_failure_mid_stream_is_an_error_event(gateway: Gateway) -> None:
    failing_after(gateway, 6)
    stream = gateway.client().chat.completions.create(
        model="specsteer", messages=ASK, max_tokens=64, stream=True, extra_body={"ignore_eos": True}
    )
    with pytest.raises(openai.APIError) as e:
        for _ in stream:
            pass
    assert "canary" not in str(e.value)
    gateway.device.restore()  # type: ignore[attr-defined]
    after = gateway.client().chat.completions.create(model="specsteer", messages=ASK, max_tokens=4)
    assert after.choices[0].message.content


def test_a_client_that_stops_waiting_for_a_whole_answer_frees_its_place(gateway: Gateway) -> None:
    forward = gateway.device.base.forward
    release = threading.Event()
    after_release = [0]

    def held(ids: Sequence[int], cache: Any) -> Any:
        if not release.wait(60):  # the answer is held here until the client has gone
            raise AssertionError("never released")
        after_release[0] += len(ids)
        return forward(ids, cache)

    body = {"model": "specsteer", "messages": ASK, "max_tokens": 1500}
    body |= {"ignore_eos": True, "method": "device_only"}
    gateway.device.base.forward = held  # type: ignore[method-assign]
    with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes the connection
        httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=1.0)
    time.sleep(0.5)  # the gateway notices the disconnect
    release.set()
    after = gateway.client().chat.completions.create(model="specsteer", messages=ASK, max_tokens=4)
    assert after.usage is not None and after.usage.completion_tokens == 4
    # The long answer ended at its next token once released (plus the short answer's own).
    assert after_release[0] < 200
