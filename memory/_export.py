"""Export and import: a user's memories (and persona) as a JSONL file, over the store seam."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from specsteer._errors import InvalidInputError
from specsteer.memory._persona import Persona
from specsteer.memory._progress import Progress, batches
from specsteer.memory._surface import StoreSurface
from specsteer.memory._types import Memory
from specsteer.memory._validate import check_memory_id, check_metadata, check_text, check_user_id
from specsteer.privacy._keyfiles import write_private

__all__ = ["EXPORT_FORMAT", "export_memories", "import_memories", "read_export"]

#: First line of an export file, so an import can tell it what it reads. Version 2 added the
#: optional persona line; version 1 files (memories only) still import.
EXPORT_FORMAT: Final = {"format": "specsteer-memory-export", "version": 2}
_READABLE: Final = ({**EXPORT_FORMAT, "version": 1}, EXPORT_FORMAT)


def export_memories(store: StoreSurface, user_id: str, path: str | Path) -> int:
    """Write the user's live memories and persona to a JSONL file, decrypted.

    The first line is a header (:data:`EXPORT_FORMAT`); then, when the user set a persona, one
    line ``{"persona": {...}}``; each further line is one memory (``id``, ``text``, ``metadata``,
    ``created_at``, ``updated_at``, ``expires_at``), oldest first. The file holds private text in
    clear: it is written with mode 0600, atomically.

    Returns:
        How many memories were written.

    Raises:
        InvalidInputError: ``path`` is a folder, its folder does not exist, or it cannot be
            written; no file (and no partial temporary file) is left behind.
    """
    target = _export_target(Path(path))
    memories = store.memories(user_id)
    persona = store.persona(user_id)
    lines = [json.dumps(EXPORT_FORMAT)]
    if not persona.empty:
        lines.append(json.dumps({"persona": persona.to_json()}, ensure_ascii=False))
    lines += [json.dumps(m.to_json(), ensure_ascii=False, allow_nan=False) for m in memories]
    _write_private(target, "".join(line + "\n" for line in lines))
    return len(memories)


def import_memories(
    store: StoreSurface, user_id: str, path: str | Path, *, progress: bool = True
) -> int:
    """Load memories from a file written by :func:`export_memories` (into any user).

    Ids, texts, metadata and timestamps are kept exactly; a memory whose id already exists
    for the user is replaced. Texts are re-embedded with the store's embedder. A persona in the
    file replaces the user's.

    Returns:
        How many memories were imported.

    Raises:
        InvalidInputError: Not an export file, or a bad line (the message names it).
    """
    check_user_id(user_id)
    persona, memories = read_export(Path(path), store.max_text_chars)
    if persona is not None:
        store.set_persona(user_id, persona)
    with Progress(progress, len(memories), "Importing memories") as bar:
        for batch in batches(memories, store.batch_size):
            store.put_many(user_id, batch)
            bar.advance(len(batch))
    return len(memories)


def read_export(path: Path, max_chars: int) -> tuple[Persona | None, list[Memory]]:
    """Parse an export file, checking its header and every line before anything is stored.

    Returns:
        The persona (None when the file has none) and the memories.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInputError(f"cannot read export file {path} ({type(e).__name__})") from e
    _check_header(path, _header(lines))
    persona: Persona | None = None
    memories: list[Memory] = []
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        if _is_persona(line):
            persona = _persona(path, n, line)
        else:
            memories.append(_record(path, n, line, max_chars))
    return persona, memories


def _is_persona(line: str) -> bool:
    try:
        doc = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(doc, dict) and set(doc) == {"persona"}


def _persona(path: Path, n: int, line: str) -> Persona:
    try:
        return Persona.from_json(json.loads(line)["persona"])
    except (json.JSONDecodeError, KeyError, TypeError, InvalidInputError) as e:
        raise InvalidInputError(
            f"{path} line {n} is not a valid persona record ({e}); fix or remove that line"
        ) from e


def _header(lines: list[str]) -> object:
    try:
        return json.loads(lines[0]) if lines else None
    except json.JSONDecodeError:
        return None


def _check_header(path: Path, header: object) -> None:
    if header in _READABLE:
        return
    if isinstance(header, dict) and header.get("format") == EXPORT_FORMAT["format"]:
        readable = " and ".join(str(h["version"]) for h in _READABLE)
        raise InvalidInputError(
            f"{path} is a specsteer memory export of version {header.get('version')!r}, which "
            f"this specsteer cannot read (it reads versions {readable}); import it with the "
            "specsteer that wrote it, or export it again from there"
        )
    raise InvalidInputError(
        f"{path} is not a specsteer memory export (first line must be {json.dumps(EXPORT_FORMAT)})"
    )


def _record(path: Path, n: int, line: str, max_chars: int) -> Memory:
    try:
        doc = json.loads(line)
        expires = doc["expires_at"]
        return Memory(
            id=check_memory_id(doc["id"]),
            text=check_text(doc["text"], max_chars),
            metadata=check_metadata(doc["metadata"]),
            created_at=float(doc["created_at"]),
            updated_at=float(doc["updated_at"]),
            expires_at=None if expires is None else float(expires),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise InvalidInputError(
            f"{path} line {n} is not a valid memory record ({type(e).__name__}: {e}); fix "
            "or remove that line"
        ) from e


def _export_target(target: Path) -> Path:
    """``target`` when a file can be written there; else an error naming what is wrong."""
    if target.is_dir():
        raise InvalidInputError(
            f"{target} is a folder; name the file to write, e.g. {target / 'memories.jsonl'}"
        )
    if not target.parent.is_dir():
        raise InvalidInputError(
            f"folder {target.parent} does not exist; create it first or export to another path"
        )
    return target


def _write_private(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` with mode 0600, atomically (:func:`write_private`: a temp
    file, fsync, rename; the temp file, which holds the same plaintext, removed on failure)."""
    try:
        write_private(target, text.encode("utf-8"))
    except OSError as e:
        raise _unwritable(target, e) from e


def _unwritable(target: Path, e: OSError) -> InvalidInputError:
    return InvalidInputError(
        f"cannot write export file {target} ({e.strerror or type(e).__name__}); choose a "
        "writable file path"
    )
