"""The egress pane's records come a page at a time, oldest first, so every record can be read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from specsteer.apps.web import Access, ChatSession, create_app
from specsteer.apps.web._egress import new_records, records_after

#: More records than one page holds (200), so reading them all takes paging.
RECORDS = 230


class _Log:
    """The three things the egress pane reads from an audit log, over a list of records."""

    def __init__(self, count: int, *, torn: bool = False) -> None:
        self._records = [
            {"seq": n, "time": n, "payload": json.dumps({"n": n})} for n in range(1, count + 1)
        ]
        self._torn = torn

    def records(self) -> Iterator[dict[str, Any]]:
        yield from self._records
        if self._torn:
            raise ValueError("a line being appended right now")

    def read_payload(self, record: dict[str, Any]) -> bytes:
        return str(record["payload"]).encode()


def _seqs(records: list[dict[str, Any]]) -> list[int]:
    return [r["seq"] for r in records]


@pytest.mark.parametrize(
    ("count", "after", "limit", "seqs", "more"),
    [
        (10, 0, 4, [1, 2, 3, 4], True),
        (10, 4, 4, [5, 6, 7, 8], True),
        (10, 8, 4, [9, 10], False),
        (8, 4, 4, [5, 6, 7, 8], False),  # exactly a page left: none after it
        (10, 10, 4, [], False),
        (0, 0, 4, [], False),
    ],
)
def test_records_after_is_the_oldest_page(
    count: int, after: int, limit: int, seqs: list[int], more: bool
) -> None:
    page = records_after(_Log(count), after=after, limit=limit)  # type: ignore[arg-type]
    assert (_seqs(page.records), page.more) == (seqs, more)


def test_paging_reads_every_record_once_even_while_one_is_appended() -> None:
    log = _Log(1022, torn=True)
    seen: list[int] = []
    after, more = 0, True
    while more:
        page = records_after(log, after=after)  # type: ignore[arg-type]
        seen += _seqs(page.records)
        after, more = (seen[-1] if seen else after), page.more
    assert seen == list(range(1, 1023))
    assert _seqs(new_records(log, after=0, limit=1)) == [1022]  # type: ignore[arg-type]


@pytest.fixture
def session() -> ChatSession:
    from specsteer.apps._assistants import CloudChoice, build_assistant

    assistant = build_assistant(cloud=CloudChoice(), tiny=True, user_id="maya")
    session = ChatSession(assistant, "tiny")
    log = session.audit_log
    for n in range(RECORDS):
        log.append(destination="test", payload=json.dumps({"n": n}).encode(), payload_type="t")
    return session


def test_the_egress_route_pages_through_the_whole_log(session: ChatSession) -> None:
    client = TestClient(create_app(session, access=Access(hosts={"testserver"})))
    first = client.get("/api/egress?after=0").json()
    assert _seqs(first["records"]) == list(range(1, 201)) and first["more"] is True
    assert first["verification"]["ok"] is True
    rest = client.get("/api/egress?after=200").json()
    assert _seqs(rest["records"]) == list(range(201, RECORDS + 1)) and rest["more"] is False
    assert client.get(f"/api/egress?after={RECORDS}").json()["records"] == []
