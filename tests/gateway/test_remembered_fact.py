"""A fact told in one session shapes an answer in a later one, in a new process, and never
leaves the device: not in the session that told it, not in the one that used it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from specsteer.privacy import AuditLog

from .echo import SESSION_CANARY as CANARY

pytestmark = pytest.mark.timeout(300)

SESSION = Path(__file__).with_name("session.py")


def session(message: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(SESSION), message],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_fact_told_once_is_used_later_and_never_leaves(specsteer_home: Path) -> None:
    told = session(f"my locker code is {CANARY} . what should i do today ?")
    assert told["remembered"] == [f"My locker code is {CANARY} ."]

    later = session("what is my locker code ?")  # a new process: only the store remembers
    assert CANARY in str(later["text"])
    assert later["remembered"] == []

    wire = [*told["wire"], *later["wire"]]  # type: ignore[misc]
    assert told["wire"] and later["wire"], "the cloud side received nothing"
    assert all(CANARY not in w for w in wire)
    # The audit log holds every payload both processes sent, and none carries the fact.
    log = AuditLog()
    payloads = [log.read_payload(r) for r in log.records()]
    assert len(payloads) == len(wire) and log.verify().ok
    assert all(p is not None and CANARY.encode() not in p for p in payloads)
