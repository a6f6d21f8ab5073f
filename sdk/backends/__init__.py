"""Model backends behind the ``ModelBackend`` seam."""

from specsteer.backends._base import KVStream, ModelBackend
from specsteer.backends._llamacpp import LlamaCppBackend
from specsteer.backends._transformers import TransformersBackend

__all__ = ["KVStream", "LlamaCppBackend", "ModelBackend", "TransformersBackend"]
