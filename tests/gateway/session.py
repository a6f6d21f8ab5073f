"""One conversation with a gateway in a process of its own (``python session.py MESSAGE``).

The gateway remembers (``remember=True``) into the encrypted store under ``$SPECSTEER_HOME``;
the device model starts its answer with the canary when its private context holds it. Prints
one JSON object: the answer, what was remembered, and every byte the cloud side received.
"""

from __future__ import annotations

import json
import sys

import openai
from echo import SESSION_CANARY, WORDS, EchoFirst, Spy  # run as a script: its folder is on sys.path

from specsteer import Assistant
from specsteer.apps.gateway import create_gateway
from specsteer.cloud_adapter import BackgroundServer
from specsteer.memory import HashEmbedder, MemoryStore
from specsteer.testing import tiny_backend


def main(message: str) -> None:
    device = EchoFirst(tiny_backend(0, words=WORDS), [SESSION_CANARY])
    cloud = Spy(tiny_backend(1, words=WORDS))
    store = MemoryStore(embedder=HashEmbedder())
    assistant = Assistant(device, cloud, memory=store, user_id="carol", remember=True)
    server = BackgroundServer(create_gateway(assistant)).start()
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model="specsteer",
            messages=[{"role": "user", "content": message}],
            max_tokens=8,
            user="carol",
        )
    finally:
        server.stop()
    out = {
        "text": reply.choices[0].message.content,
        "remembered": reply.specsteer["remembered"],  # type: ignore[attr-defined]
        "wire": [w.decode("utf-8") for w in cloud.received],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
