"""kill -9 during a bulk ingest: the store reopens cleanly and keeps every acknowledged write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from specsteer.memory import HashEmbedder, MemoryStore

CHILD = r"""
import sys
from specsteer.memory import HashEmbedder, MemoryStore

store = MemoryStore(embedder=HashEmbedder(), batch_size=int(sys.argv[1]))
start = int(sys.argv[2])

def ack(batch):
    # Called only after the batch's write returned: these ids are acknowledged.
    sys.stdout.write("".join(m.id + "\n" for m in batch))
    sys.stdout.flush()

if sys.argv[3] == "single":
    for i in range(start, start + 100_000):
        m = store.add("alice", f"single memory {i} about topic {i % 97}")
        ack([m])
else:
    texts = (f"bulk memory {i} about topic {i % 97}" for i in range(start, start + 100_000))
    store.add_many("alice", texts, on_batch=ack, progress=False)
"""


def _ingest_and_kill(mode: str, batch: int, start: int, min_acks: int) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(batch), str(start), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    acked: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while len(acked) < min_acks:
        line = proc.stdout.readline()
        assert line, (
            f"child exited early: {proc.wait()} {proc.stderr.read() if proc.stderr else ''}"
        )
        acked.append(line.strip())
        assert time.monotonic() < deadline, "child too slow"
    os.kill(proc.pid, signal.SIGKILL)
    # Anything the child printed before it died was acknowledged too.
    rest, _ = proc.communicate(timeout=30)
    acked.extend(x for x in rest.split() if x)
    assert proc.returncode == -signal.SIGKILL
    return acked


def test_kill_during_bulk_ingest_keeps_acknowledged_writes(specsteer_home: Path) -> None:
    acked: list[str] = []
    # Kill mid-ingest three times over the same store: batched, single adds, batched again.
    for round_, (mode, batch, min_acks) in enumerate(
        [("bulk", 32, 400), ("single", 1, 60), ("bulk", 50, 700)]
    ):
        acked += _ingest_and_kill(mode, batch, round_ * 1_000_000, min_acks)
        store = MemoryStore(embedder=HashEmbedder())
        missing = [mid for mid in acked if not _present(store, mid)]
        assert missing == [], f"{len(missing)} acknowledged writes lost after kill round {round_}"
        assert store.count("alice") >= len(set(acked))
        # The reopened store is fully usable: search, write, export.
        assert store.search("alice", "memory about topic 5", k=3)
        store.add("alice", f"written after restart {round_}")
        store.close()


def _present(store: MemoryStore, memory_id: str) -> bool:
    try:
        store.get("alice", memory_id)
    except Exception:
        return False
    return True
