"""The web app's JSON API without a browser: validation, the request guard, forgetting."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from specsteer.apps.web._egress import payload_fields


@pytest.fixture
def client() -> TestClient:
    from specsteer.apps._assistants import CloudChoice, build_assistant
    from specsteer.apps.web import Access, ChatSession, create_app

    assistant = build_assistant(cloud=CloudChoice(), tiny=True, user_id="maya")
    app = create_app(ChatSession(assistant, "tiny"), access=Access(hosts={"testserver"}))
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"message": "  "}, "message: it is empty; write something first"),
        ({"message": "hi", "max_new_tokens": "lots"}, "answer length (tokens): Input should be"),
        ({"message": "hi", "max_new_tokens": 0}, "answer length (tokens): Input should be greater"),
        ({"message": "hi", "method": "magic"}, "method: choose one of specsteer"),
        ({"message": "hi", "context": "x"}, "context: Extra inputs are not permitted"),
    ],
)
def test_bad_chat_input_is_one_sentence(client: TestClient, body: dict, message: str) -> None:
    reply = client.post("/api/chat", json=body)
    assert reply.status_code == 422
    assert reply.json()["error"].startswith(message)


def test_guard_refuses_other_hosts_origins_and_forms(client: TestClient) -> None:
    assert client.get("/api/info", headers={"host": "evil.example"}).status_code == 421
    other = client.post("/api/memories", json={"text": "x"}, headers={"origin": "http://evil"})
    assert other.status_code == 403
    form = client.post("/api/memories", content="text=x")
    assert form.status_code == 415 and "JSON" in form.json()["error"]


def test_forget_with_nothing_stored_clears_the_chat(client: TestClient) -> None:
    forgotten = client.post("/api/forget", json={"user": "maya"})
    assert forgotten.status_code == 200, forgotten.text
    assert forgotten.json() == {"forgotten": "maya", "history_cleared": True}
    assert client.post("/api/memories", json={"text": "i love pizza"}).status_code == 201


def test_forget_needs_the_name_then_a_forgotten_user_needs_reinstate(client: TestClient) -> None:
    added = client.post("/api/memories", json={"text": "i love pizza"}).json()
    edited = client.put(f"/api/memories/{added['id']}", json={"text": "i love pasta"})
    assert edited.json()["text"] == "i love pasta"
    assert client.post("/api/forget", json={"user": "bob"}).status_code == 400
    forgotten = client.post("/api/forget", json={"user": "maya"}).json()
    assert forgotten == {"forgotten": "maya", "history_cleared": True}
    assert client.get("/api/memories").json()["memories"] == []
    refused = client.post("/api/memories", json={"text": "again"})
    assert refused.status_code == 409 and "Store again" in refused.json()["error"]
    assert (
        client.post("/api/memories", json={"text": "again", "reinstate": True}).status_code == 201
    )
    missing = client.delete("/api/memories/" + "0" * 32).json()
    assert missing == {"deleted": False, "history_cleared": False}


def test_payload_fields_name_the_paths_that_carry_data() -> None:
    payload = {"a": 1, "b": "", "c": [{"d": "x"}], "ids": [1, 2, 3], "e": None, "f": {"g": []}}
    assert payload_fields(payload) == ["a", "c[0].d", "ids[3]"]


def test_a_remembering_assistant_says_what_it_stored_from_the_turn() -> None:
    from specsteer.apps._assistants import CloudChoice, build_assistant
    from specsteer.apps.web import Access, ChatSession, create_app

    assistant = build_assistant(cloud=CloudChoice(), tiny=True, user_id="maya", remember=True)
    app = create_app(ChatSession(assistant, "tiny"), access=Access(hosts={"testserver"}))
    client = TestClient(app, raise_server_exceptions=False)
    said = "I go climbing every Sunday morning."
    response = client.post("/api/chat", json={"message": said, "max_new_tokens": 4})
    events = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    done = [e for e in events if e["type"] == "done"]
    assert done and done[0]["remembered"] == [said]
    assert done[0]["kept"]["lift"] == []  # no context-lift policy: nothing kept for its lift
    assert said in client.get("/api/memories").text


def test_persona_is_read_from_memories_and_set_from_the_page(client: TestClient) -> None:
    client.post("/api/memories", json={"text": "My sister Lena lives in Lisbon."})
    client.post("/api/memories", json={"text": "Thanks!\nCheers,\nMaya"})
    view = client.get("/api/persona").json()
    assert view["user"] == "maya"
    assert view["name"]["value"] == "Maya" and view["name"]["source"] == "inferred"
    assert view["people"][0] | {"memory_id": None} == {
        "name": "Lena",
        "relation": "sister",
        "source": "inferred",
        "memory_id": None,
    }
    body = {"name": "Maya Okafor", "people": [{"name": "Mr Costa", "relation": "landlord"}]}
    changed = client.put("/api/persona", json={**body, "hidden": ["Lena"]}).json()
    assert changed["name"] == {"value": "Maya Okafor", "source": "set", "memory_id": None}
    assert changed["sign_off"]["source"] == "inferred"
    assert [p["name"] for p in changed["people"]] == ["Mr Costa"] and changed["hidden"] == ["Lena"]
    bad = client.put("/api/persona", json={"people": [{"name": " ", "relation": "sister"}]})
    assert bad.status_code == 422 and bad.json()["error"].startswith("people.0.name: it is empty")
    extra = client.put("/api/persona", json={"nick": "M"})
    assert extra.status_code == 422
    # The chat tells the page who the answer was written as, and to whom.
    lines = client.post("/api/chat", json={"message": "a note for my sister", "max_new_tokens": 2})
    done = next(json.loads(x) for x in lines.text.splitlines() if '"done"' in x)
    assert done["kept"]["writer"] == "Maya Okafor"
    assert done["kept"]["recipients"] == []  # Lena is hidden now
