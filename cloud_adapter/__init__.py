"""The cloud side: wire protocol, the CloudVerifier seam and its adapters."""

from specsteer.cloud_adapter._base import CloudVerifier, check_response
from specsteer.cloud_adapter._inprocess import InProcessVerifier
from specsteer.cloud_adapter._verify import StreamPool, VerifierCore
from specsteer.cloud_adapter.protocol import (
    PROTOCOL_VERSION,
    ChatMessage,
    Text,
    TokenIds,
    TopK,
    Usage,
    VerifyParams,
    VerifyRequest,
    VerifyResponse,
)

__all__ = [
    "PROTOCOL_VERSION",
    "ChatMessage",
    "CloudVerifier",
    "InProcessVerifier",
    "StreamPool",
    "Text",
    "TokenIds",
    "TopK",
    "Usage",
    "VerifierCore",
    "VerifyParams",
    "VerifyRequest",
    "VerifyResponse",
    "check_response",
]
