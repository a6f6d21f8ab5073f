"""Reversible placeholders: ``[EMAIL_ADDRESS_1]`` goes to the cloud, the real value stays here.

Within one :class:`Pseudonymizer` (one session) the same value always gets the same placeholder,
so the cloud model can still tell "the same person" from "another person". :meth:`restore` puts
the values back on the device before the user sees the text. The mapping lives in memory only.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping

from specsteer.privacy._detectors import Span

__all__ = ["Pseudonymizer"]

# Short, readable labels for the common entities; any other entity uses its own name.
_LABELS = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "STREET_ADDRESS": "ADDRESS"}
_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]*_\d+\]")


def _normalize(value: str) -> str:
    return " ".join(value.split()).casefold()


class Pseudonymizer:
    """Consistent, reversible placeholders for one session. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._counters: dict[str, int] = {}

    def placeholder(self, entity: str, value: str) -> str:
        """Return the placeholder for ``value`` (making one on first sight)."""
        label = _LABELS.get(entity, entity)
        key = (label, _normalize(value))
        with self._lock:
            existing = self._by_value.get(key)
            if existing is not None:
                return existing
            self._counters[label] = self._counters.get(label, 0) + 1
            ph = f"[{label}_{self._counters[label]}]"
            self._by_value[key] = ph
            self._by_placeholder[ph] = value
            return ph

    def pseudonymize(self, text: str, spans: Iterable[Span]) -> str:
        """Replace each span of ``text`` by its placeholder.

        Args:
            text: The text the spans index into.
            spans: Non-overlapping spans (e.g. from :func:`detect`).

        Returns:
            The text with placeholders.
        """
        out: list[str] = []
        pos = 0
        for s in sorted(spans, key=lambda s: s.start):
            if s.start < pos:
                continue  # overlapping span: the earlier one already covers it
            out.append(text[pos : s.start])
            out.append(self.placeholder(s.entity, text[s.start : s.end]))
            pos = s.end
        out.append(text[pos:])
        return "".join(out)

    def restore(self, text: str) -> str:
        """Put the original values back in place of this session's placeholders.

        Placeholders this session did not make are left as they are.
        """
        with self._lock:
            table = dict(self._by_placeholder)
        return _PLACEHOLDER.sub(lambda m: table.get(m.group(0), m.group(0)), text)

    @property
    def mapping(self) -> Mapping[str, str]:
        """A copy of placeholder -> original value. Private: never send or log it."""
        with self._lock:
            return dict(self._by_placeholder)

    def clear(self) -> None:
        """Forget every mapping (end of session)."""
        with self._lock:
            self._by_value.clear()
            self._by_placeholder.clear()
            self._counters.clear()
