"""Turning notes and chat transcripts into memory-sized pieces (pure functions, no store)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from specsteer._errors import InvalidInputError

__all__ = ["chunk_note", "read_notes", "read_transcript", "split_sentences"]

_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_NOTE_SUFFIXES = (".txt", ".md", ".markdown", ".rst")


def split_sentences(text: str) -> list[str]:
    """``text``'s sentences: split after ".", "!" or "?" and the whitespace that follows."""
    return _SENTENCE.split(text)


def chunk_note(text: str, max_chars: int) -> list[str]:
    """Split a note into pieces of at most ``max_chars``: paragraphs, then sentences, then words.

    Args:
        text: The note.
        max_chars: Largest piece.

    Returns:
        Non-blank pieces, in order, each stripped.
    """
    pieces: list[str] = []
    for para in _PARAGRAPH.split(text):
        para = " ".join(para.split())
        if not para:
            continue
        if len(para) <= max_chars:
            pieces.append(para)
            continue
        current = ""
        for sentence in split_sentences(para):
            while len(sentence) > max_chars:  # one huge sentence: cut at a word boundary
                cut = sentence.rfind(" ", 0, max_chars + 1)
                cut = cut if cut > 0 else max_chars
                if current:
                    pieces.append(current)
                    current = ""
                pieces.append(sentence[:cut].strip())
                sentence = sentence[cut:].strip()
            if not sentence:
                continue
            if current and len(current) + 1 + len(sentence) > max_chars:
                pieces.append(current)
                current = sentence
            else:
                current = f"{current} {sentence}" if current else sentence
        if current:
            pieces.append(current)
    return [p for p in pieces if p]


def read_notes(source: str | Path | Iterable[str | Path]) -> Iterator[tuple[str, str | None]]:
    """Yield ``(note_text, file_name_or_None)`` from text, a file, a folder, or a list of them.

    A ``str`` is note text; a ``Path`` is a file or a folder (its ``.txt``, ``.md``,
    ``.markdown`` and ``.rst`` files, recursively, in sorted order).
    """
    if isinstance(source, str):
        yield source, None
        return
    if isinstance(source, Path):
        if source.is_dir():
            for path in sorted(source.rglob("*")):
                if path.is_file() and path.suffix.lower() in _NOTE_SUFFIXES:
                    yield _read_file(path), path.name
        elif source.is_file():
            yield _read_file(source), source.name
        else:
            raise InvalidInputError(f"notes path {source} does not exist; pass a file or folder")
        return
    if isinstance(source, Iterable):
        for item in source:
            if not isinstance(item, str | Path):
                raise InvalidInputError(
                    f"notes must be str (text) or Path items, got {type(item).__name__}"
                )
            yield from read_notes(item)
        return
    raise InvalidInputError(
        f"notes must be text, a Path, or a list of them, got {type(source).__name__}"
    )


def _read_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInputError(f"{path} is not UTF-8 text; convert it or leave it out") from e


def _messages_from_json(data: Any, where: str) -> list[Mapping[str, Any]]:
    if isinstance(data, Mapping) and "messages" in data:
        data = data["messages"]
    if not isinstance(data, list):
        raise InvalidInputError(f"{where}: expected a list of messages or {{'messages': [...]}}")
    return data


def read_transcript(
    transcript: str | Path | Sequence[Mapping[str, Any]],
) -> list[tuple[int, str, str]]:
    """Parse a chat transcript into ``(turn_index, role, content)`` triples.

    Accepts a list of ``{"role": ..., "content": ...}`` messages (the OpenAI chat shape), a
    ``.json`` file holding such a list (or ``{"messages": [...]}``), or a ``.jsonl`` file with
    one message per line.

    Raises:
        InvalidInputError: The transcript is not in one of these shapes; the message says where.
    """
    if isinstance(transcript, str | Path):
        path = Path(transcript)
        if not path.is_file():
            raise InvalidInputError(f"transcript file {path} does not exist")
        raw = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".jsonl":
            messages = []
            for n, line in enumerate(raw.splitlines(), 1):
                if line.strip():
                    try:
                        messages.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise InvalidInputError(f"{path} line {n} is not JSON: {e.msg}") from e
        else:
            try:
                messages = _messages_from_json(json.loads(raw), str(path))
            except json.JSONDecodeError as e:
                raise InvalidInputError(f"{path} is not JSON: {e.msg}") from e
    elif isinstance(transcript, Sequence):
        messages = list(transcript)
    else:
        raise InvalidInputError(
            f"transcript must be a list of messages or a path, got {type(transcript).__name__}"
        )
    out: list[tuple[int, str, str]] = []
    for i, msg in enumerate(messages):
        if (
            not isinstance(msg, Mapping)
            or not isinstance(msg.get("role"), str)
            or not isinstance(msg.get("content"), str)
        ):
            raise InvalidInputError(
                f"transcript message {i} must be a dict with str 'role' and 'content'"
            )
        out.append((i, msg["role"], msg["content"]))
    return out
