"""What a generation emits as it runs: typed round events, and the folds over them.

The engine's loop yields these; :meth:`specsteer.Assistant.stream` hands them to the caller, and
everything that reports on a generation -- :class:`~specsteer.GenerationStats`, the web page's
token marks, the CLI's stream, the benchmarks -- is a fold over them, never a wrapper around an
engine part.

* :class:`Tokens` -- tokens that became final in the answer, with where they came from;
* :class:`Round` -- one draft-verify-recover round (or a round kept on the device, and why);
* :class:`Exchange` -- one payload to the cloud and its answer (bytes, seconds);
* :class:`DeviceWork` -- seconds the device computed;
* :class:`Fallback` -- the cloud failed: the rest of the answer is written on the device;
* :class:`Finished` -- the last event: the whole result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from specsteer._result import GenerationResult, GenerationStats, RoundStat
from specsteer._wire import PARTIAL, IncrementalText

__all__ = [
    "DeviceWork",
    "Exchange",
    "Fallback",
    "Finished",
    "Round",
    "RoundEvent",
    "StatsFold",
    "TextFold",
    "TokenKind",
    "Tokens",
    "close_events",
]

#: Where final tokens came from: drafted on the device and accepted by the cloud; chosen on the
#: device from the cloud's top-k (a recovery, or the bonus token); written on the device without
#: a cloud round (a round kept local); the device model alone (``device_only``, or after a
#: fallback); the cloud model alone (``cloud_only``); the user's own words from their persona,
#: which no model wrote (the sign-off a text to a person ends with, :mod:`specsteer._closing`).
TokenKind = Literal["accepted", "recovered", "local", "device", "cloud", "persona"]


@dataclass(frozen=True)
class Tokens:
    """Tokens appended to the answer, in order (an end token included when it ends it).

    Attributes:
        ids: the tokens.
        kind: where they came from.
        kept: why the cloud's view of the answer holds a placeholder instead of them, when it
            does: ``"guard"`` (private text), ``"refused"`` (the guard refused the payload) or
            ``"lift"`` (the context-lift policy); ``None`` when the cloud's view holds them too
            (or nothing leaves at all).
    """

    ids: tuple[int, ...]
    kind: TokenKind
    kept: str | None = None


@dataclass(frozen=True)
class Round:
    """One round: the draft, how much of it the cloud accepted, and what the device added.

    Attributes:
        drafted: the draft tokens (those sent; a round kept local: those written locally).
        accepted: how many of them the answer keeps.
        recovered: whether the round ended with a token chosen on the device.
        local: whether the round stayed on the device.
        reason: why it stayed on the device (``"guard"``: the draft carried private text;
            ``"refused"``: the guard refused the payload; ``"lift"``: the context-lift policy).
        ahead: a round that passed whole while the next draft was made ahead: whether the
            guess that draft assumed held (``None``: no draft was made ahead).
    """

    drafted: tuple[int, ...]
    accepted: int
    recovered: bool
    local: bool = False
    reason: str | None = None
    ahead: bool | None = None

    @property
    def rejected(self) -> tuple[int, ...]:
        """The part of the draft the answer does not keep."""
        return self.drafted[self.accepted :]

    @property
    def stat(self) -> RoundStat:
        """The round as :class:`~specsteer.RoundStat` counts."""
        return RoundStat(
            drafted=len(self.drafted),
            accepted=self.accepted,
            recovered=self.recovered,
            local=self.local,
            ahead=self.ahead,
        )


@dataclass(frozen=True)
class Exchange:
    """One payload to the cloud: its wire bytes, the answer's bytes (0 if none came), seconds."""

    bytes_sent: int
    bytes_received: int
    seconds: float


@dataclass(frozen=True)
class DeviceWork:
    """Seconds the device spent computing (drafting, scoring, recovering)."""

    seconds: float


@dataclass(frozen=True)
class Fallback:
    """The cloud failed; the rest of the answer is written on the device."""

    reason: str


@dataclass(frozen=True)
class Finished:
    """The generation is over: its result."""

    result: GenerationResult


RoundEvent = Tokens | Round | Exchange | DeviceWork | Fallback | Finished


class StatsFold:
    """Folds round events into :class:`~specsteer.GenerationStats`.

    Args:
        method: the generation's method, as the stats name it.
    """

    def __init__(self, method: str) -> None:
        self._stats = GenerationStats(method=method, new_tokens=0)

    def add(self, event: RoundEvent) -> None:
        """Count one event."""
        s = self._stats
        if isinstance(event, Tokens) and event.kind != "persona":  # no model wrote those
            s = replace(s, new_tokens=s.new_tokens + len(event.ids))
        elif isinstance(event, Round):
            s = replace(s, rounds=(*s.rounds, event.stat))
        elif isinstance(event, Exchange):
            s = replace(
                s,
                cloud_calls=s.cloud_calls + (event.bytes_sent > 0),
                bytes_sent=s.bytes_sent + event.bytes_sent,
                bytes_received=s.bytes_received + event.bytes_received,
                cloud_seconds=s.cloud_seconds + event.seconds,
            )
        elif isinstance(event, DeviceWork):
            s = replace(s, device_seconds=s.device_seconds + event.seconds)
        elif isinstance(event, Fallback):
            s = replace(s, fallback=event.reason)
        self._stats = s

    def fold(self, events: Iterable[RoundEvent]) -> StatsFold:
        """Count every event of ``events``; returns self."""
        for event in events:
            self.add(event)
        return self

    def stats(self, wall_seconds: float) -> GenerationStats:
        """The counters so far, with the generation's wall-clock seconds."""
        return replace(self._stats, wall_seconds=wall_seconds)


class TextFold:
    """Folds :class:`Tokens` events into the answer's text, a new piece at a time.

    A character split over tokens waits until its last token arrives, and end tokens are not
    text.

    Args:
        decode: the tokenizer's ``decode`` for the events' ids.
        eos: the end tokens.
    """

    def __init__(self, decode: Callable[[Sequence[int]], str], eos: frozenset[int]) -> None:
        self._text = IncrementalText(decode)
        self._eos = eos
        self.ids: list[int] = []
        self.shown = ""

    def add(self, event: Tokens) -> str:
        """The text ``event`` adds to the answer (``""`` while a character is incomplete)."""
        self.ids.extend(t for t in event.ids if t not in self._eos)
        return self._advance(self._text(self.ids))

    def after(self, ids: Sequence[int]) -> str:
        """The text ``ids`` would add after the answer so far (the answer is not changed)."""
        whole = self._text([*self.ids, *ids])
        self._text(self.ids)
        return whole.rstrip(PARTIAL)[len(self.shown) :]

    def _advance(self, text: str) -> str:
        stable = text.rstrip(PARTIAL)
        new = stable[len(self.shown) :]
        self.shown = stable
        return new


def close_events(events: Iterable[RoundEvent]) -> None:
    """End a generation whose events were left early (a generator's ``close``; other
    iterables have nothing to end)."""
    close = getattr(events, "close", None)
    if close is not None:
        close()
