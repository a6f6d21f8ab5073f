"""The private context block: search hits laid out for the small model's prompt, within a budget."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from specsteer._errors import InvalidInputError
from specsteer.memory._types import SearchHit

__all__ = ["ContextBlock", "build_context"]

DEFAULT_HEADER = "Private notes about the user (most relevant first):"


@dataclass(frozen=True)
class ContextBlock:
    """The context block and how it was filled.

    Attributes:
        text: The block to put in the device prompt ("" when nothing fits or nothing was found).
        hits: The hits included, most relevant first.
        dropped: The hits left out because they did not fit the budget.
        tokens: ``count_tokens(text)``.
    """

    text: str
    hits: tuple[SearchHit, ...]
    dropped: tuple[SearchHit, ...]
    tokens: int


def build_context(
    hits: Sequence[SearchHit],
    *,
    budget_tokens: int,
    count_tokens: Callable[[str], int],
    header: str = DEFAULT_HEADER,
    item_format: str = "- {text}",
) -> ContextBlock:
    """Lay out search hits as the private context block, most relevant first, within a budget.

    Hits are taken in descending score order. Each is kept only if the whole block, counted
    with ``count_tokens`` (the device model's tokenizer), still fits ``budget_tokens``; a hit
    that does not fit is skipped and shorter, less relevant hits may still fill the space.
    The whole block is recounted each time, because tokenizers are not additive across joins.

    Args:
        hits: Search results, in any order.
        budget_tokens: Largest block, in tokens (header included).
        count_tokens: Counts tokens of a string with the device model's tokenizer.
        header: First line of the block; "" for none.
        item_format: Format of one line; ``{text}`` and ``{score}`` are available.

    Returns:
        The block and which hits made it in.

    Raises:
        InvalidInputError: A negative budget.
    """
    if isinstance(budget_tokens, bool) or not isinstance(budget_tokens, int) or budget_tokens < 0:
        raise InvalidInputError(f"budget_tokens must be an int >= 0, got {budget_tokens!r}")
    ordered = sorted(hits, key=lambda h: h.score, reverse=True)
    lines: list[str] = []
    kept: list[SearchHit] = []
    dropped: list[SearchHit] = []

    def render(items: list[str]) -> str:
        return "\n".join([header, *items]) if header else "\n".join(items)

    for hit in ordered:
        line = item_format.format(text=" ".join(hit.text.split()), score=hit.score)
        candidate = render([*lines, line])
        if count_tokens(candidate) <= budget_tokens:
            lines.append(line)
            kept.append(hit)
        else:
            dropped.append(hit)
    text = render(lines) if kept else ""
    return ContextBlock(
        text=text,
        hits=tuple(kept),
        dropped=tuple(dropped),
        tokens=count_tokens(text) if text else 0,
    )
