"""Model backends behind the ``ModelBackend`` seam."""

from specsteer.backends._base import KVStream, ModelBackend
from specsteer.backends._llamacpp import (
    LlamaCppBackend,
    load_qwen_coder_0_5b_llamacpp,
    load_qwen_coder_1_5b_llamacpp,
)
from specsteer.backends._transformers import TransformersBackend

__all__ = [
    "KVStream",
    "LlamaCppBackend",
    "ModelBackend",
    "TransformersBackend",
    "load_qwen_coder_0_5b_llamacpp",
    "load_qwen_coder_1_5b_llamacpp",
]
