"""A gateway on tiny models, served over real HTTP from a thread of the test process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from specsteer import Assistant
from specsteer.apps.gateway import create_gateway
from specsteer.cloud_adapter import BackgroundServer
from specsteer.memory.testing import InMemoryStore

from .echo import CANARIES, EchoFirst, Spy, echo_models, memory_of


@dataclass
class Gateway:
    url: str
    assistant: Assistant
    device: EchoFirst
    cloud: Spy
    store: InMemoryStore

    def client(self, api_key: str = "unused", **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0, **kwargs)


@pytest.fixture
def make_gateway() -> Iterator[Callable[..., Gateway]]:
    servers: list[BackgroundServer] = []

    def make(*, remember: bool = False, **options: Any) -> Gateway:
        device, cloud = echo_models()
        store = InMemoryStore()
        for user in CANARIES:
            store.add(user, memory_of(user))
        assistant = Assistant(device, cloud, memory=store, user_id="alice", remember=remember)
        server = BackgroundServer(create_gateway(assistant, **options)).start()
        servers.append(server)
        return Gateway(server.url, assistant, device, cloud, store)

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def gateway(make_gateway: Callable[..., Gateway]) -> Gateway:
    return make_gateway()
