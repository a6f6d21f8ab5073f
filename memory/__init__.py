"""The local memory store: per-user private memories, encrypted at rest, retrieved by meaning.

See ``docs/memory.md``. chromadb and sentence-transformers are optional (``pip install
'specsteer[memory]'``) and imported only when a store or the default embedder is made.
"""

from specsteer.memory._context import ContextBlock, build_context
from specsteer.memory._embedder import Embedder, HashEmbedder
from specsteer.memory._errors import CorruptedMemoryError, MemoryNotFoundError, UserForgottenError
from specsteer.memory._sentence import SentenceTransformerEmbedder, bundled_minilm_path
from specsteer.memory._store import EXPORT_FORMAT, KEEP, MemoryStore
from specsteer.memory._types import Memory, MemoryInput, MetadataValue, SearchHit

__all__ = [
    "EXPORT_FORMAT",
    "KEEP",
    "ContextBlock",
    "CorruptedMemoryError",
    "Embedder",
    "HashEmbedder",
    "Memory",
    "MemoryInput",
    "MemoryNotFoundError",
    "MemoryStore",
    "MetadataValue",
    "SearchHit",
    "SentenceTransformerEmbedder",
    "UserForgottenError",
    "build_context",
    "bundled_minilm_path",
]
