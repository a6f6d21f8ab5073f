"""The local memory store: per-user private memories, encrypted at rest, retrieved by meaning.

See ``docs/memory.md``. ``BaseMemoryStore`` is the seam; ``MemoryStore`` is its chromadb
implementation (the default), ``specsteer.memory.testing.InMemoryStore`` its fake for tests.
chromadb and sentence-transformers are optional (``pip install 'specsteer[memory]'``) and
imported only when a store or the default embedder is made.
"""

from specsteer.memory._base import KEEP, BaseMemoryStore
from specsteer.memory._chroma import MemoryStore
from specsteer.memory._context import ContextBlock, build_context
from specsteer.memory._embedder import Embedder, HashEmbedder
from specsteer.memory._errors import (
    CorruptedMemoryError,
    MemoryNotFoundError,
    UserForgottenError,
    UserKeyMissingError,
    UserNotFoundError,
)
from specsteer.memory._export import EXPORT_FORMAT, export_memories, import_memories
from specsteer.memory._ingest import ingest_notes, ingest_transcript
from specsteer.memory._persona import Inference, Person, Persona, PersonaView
from specsteer.memory._persona_infer import RELATIONS, infer_persona
from specsteer.memory._sentence import SentenceTransformerEmbedder, bundled_minilm_path
from specsteer.memory._statements import Statements, personal_statements, split_statements
from specsteer.memory._types import Memory, MemoryInput, MetadataValue, SearchHit

__all__ = [
    "EXPORT_FORMAT",
    "KEEP",
    "RELATIONS",
    "BaseMemoryStore",
    "ContextBlock",
    "CorruptedMemoryError",
    "Embedder",
    "HashEmbedder",
    "Inference",
    "Memory",
    "MemoryInput",
    "MemoryNotFoundError",
    "MemoryStore",
    "MetadataValue",
    "Person",
    "Persona",
    "PersonaView",
    "SearchHit",
    "SentenceTransformerEmbedder",
    "Statements",
    "UserForgottenError",
    "UserKeyMissingError",
    "UserNotFoundError",
    "build_context",
    "bundled_minilm_path",
    "export_memories",
    "import_memories",
    "infer_persona",
    "ingest_notes",
    "ingest_transcript",
    "personal_statements",
    "split_statements",
]
