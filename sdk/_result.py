"""What a generation returns: the text, its token ids, and how it was made."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["GenerationResult", "GenerationStats", "RoundStat"]


@dataclass(frozen=True)
class RoundStat:
    """One draft-verify-recover round."""

    drafted: int
    accepted: int
    #: Whether the round ended with a token chosen on the device (recovery or bonus).
    recovered: bool
    #: Whether the round stayed on the device because its draft carried private text.
    local: bool = False
    #: A round that passed whole while the next draft was made ahead on a guess of the token
    #: after it: whether that guess held, so the draft was used; ``None``: no draft was made
    #: ahead (sequential rounds, rejections).
    ahead: bool | None = None


@dataclass(frozen=True)
class GenerationStats:
    """Counters of one generation. Times are seconds of wall clock."""

    method: str
    #: Tokens the models wrote (the answer's, less the user's sign-off that the device adds).
    new_tokens: int
    rounds: tuple[RoundStat, ...] = ()
    cloud_calls: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    device_seconds: float = 0.0
    cloud_seconds: float = 0.0
    wall_seconds: float = 0.0
    #: Why the session went device-only part way (the cloud failed), or None.
    fallback: str | None = None

    @property
    def drafted_tokens(self) -> int:
        """Draft tokens sent for verification (rounds kept on the device not counted)."""
        return sum(r.drafted for r in self.rounds if not r.local)

    @property
    def accepted_tokens(self) -> int:
        """Draft tokens the cloud accepted."""
        return sum(r.accepted for r in self.rounds if not r.local)

    @property
    def local_rounds(self) -> int:
        """Rounds kept on the device because their draft carried private text."""
        return sum(r.local for r in self.rounds)

    @property
    def acceptance_rate(self) -> float:
        """Accepted / drafted (0 when nothing was drafted)."""
        d = self.drafted_tokens
        return self.accepted_tokens / d if d else 0.0

    @property
    def tokens_per_round(self) -> float:
        """Output tokens per cloud round trip."""
        return self.new_tokens / len(self.rounds) if self.rounds else float(self.new_tokens)

    @property
    def tokens_per_second(self) -> float:
        """Output tokens per second of wall clock."""
        return self.new_tokens / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def bytes_per_token(self) -> float:
        """Bytes on the wire (both ways) per output token."""
        total = self.bytes_sent + self.bytes_received
        return total / self.new_tokens if self.new_tokens else 0.0

    def as_dict(self) -> dict[str, Any]:
        """A flat, JSON-ready summary."""
        return {
            "method": self.method,
            "new_tokens": self.new_tokens,
            "rounds": len(self.rounds),
            "drafted_tokens": self.drafted_tokens,
            "accepted_tokens": self.accepted_tokens,
            "acceptance_rate": round(self.acceptance_rate, 4),
            "tokens_per_round": round(self.tokens_per_round, 3),
            "local_rounds": self.local_rounds,
            "cloud_calls": self.cloud_calls,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "bytes_per_token": round(self.bytes_per_token, 1),
            "device_seconds": round(self.device_seconds, 4),
            "cloud_seconds": round(self.cloud_seconds, 4),
            "wall_seconds": round(self.wall_seconds, 4),
            "tokens_per_second": round(self.tokens_per_second, 2),
            "fallback": self.fallback,
        }


@dataclass(frozen=True)
class GenerationResult:
    """The outcome of one generation."""

    text: str
    token_ids: tuple[int, ...]
    finish_reason: Literal["eos", "length"]
    stats: GenerationStats
    #: What left the device (a privacy report), when a privacy layer is attached.
    privacy: Any | None = field(default=None)
    #: The user's statements this turn stored as new memories (``Assistant(remember=...)``).
    remembered: tuple[str, ...] = ()
