"""The privacy report attached to each generation result."""

from __future__ import annotations

import threading
from collections import Counter

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PrivacyReport", "ReportAccumulator"]


class PrivacyReport(BaseModel):
    """What left the device during one generation, and what was kept back.

    Counts only; it never holds private text, so it may be logged or shown.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    payloads: int = Field(default=0, description="Payloads sent.")
    payloads_refused: int = Field(default=0, description="Payloads stopped by the guard.")
    bytes_sent: int = Field(default=0, description="Serialized bytes sent.")
    bytes_received: int = Field(default=0, description="Response bytes received.")
    token_ids_sent: int = Field(default=0, description="Integers in token-id arrays sent.")
    words_sent: int = Field(default=0, description="Words in text fields sent.")
    fields_sent: list[str] = Field(
        default_factory=list, description="JSON paths of the fields that carried data."
    )
    destinations: list[str] = Field(default_factory=list, description="Where payloads went.")
    detectors_fired: dict[str, int] = Field(
        default_factory=dict, description="Findings per entity, screened text and payloads."
    )
    spans_kept_local: int = Field(default=0, description="Spans blocked and kept on the device.")
    spans_pseudonymized: int = Field(default=0, description="Spans replaced by placeholders.")
    audit_seqs: list[int] = Field(
        default_factory=list, description="Audit log records written for these payloads."
    )
    tokens_kept_for_lift: int = Field(
        default=0,
        description="Tokens kept on the device by the context-lift policy (their lift, or the "
        "answer's lift budget).",
    )
    context_lift_sent: float = Field(
        default=0.0, description="Total positive context lift (nats) of the tokens that left."
    )
    max_context_lift_sent: float = Field(
        default=0.0, description="The largest context lift (nats) of one token that left."
    )


class ReportAccumulator:
    """Mutable, thread-safe counters behind :class:`PrivacyReport` snapshots."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._counts: Counter[str] = Counter()
            self._fields: set[str] = set()
            self._dest: set[str] = set()
            self._fired: Counter[str] = Counter()
            self._seqs: list[int] = []

    def add(self, **counts: int) -> None:
        """Add to named counters (the :class:`PrivacyReport` integer fields)."""
        with self._lock:
            self._counts.update(counts)

    def fired(self, entities: Counter[str]) -> None:
        """Count findings per entity."""
        with self._lock:
            self._fired.update(entities)

    def sent(self, *, destination: str, fields: set[str], seq: int) -> None:
        """Record a payload's destination, fields and audit record."""
        with self._lock:
            self._dest.add(destination)
            self._fields.update(fields)
            self._seqs.append(seq)

    def snapshot(self) -> PrivacyReport:
        """A frozen copy of the counters."""
        with self._lock:
            return PrivacyReport(
                **{k: v for k, v in self._counts.items()},
                fields_sent=sorted(self._fields),
                destinations=sorted(self._dest),
                detectors_fired=dict(sorted(self._fired.items())),
                audit_seqs=list(self._seqs),
            )
