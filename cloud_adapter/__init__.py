"""The cloud side: wire protocol, the CloudVerifier seam and its adapters."""

from specsteer.cloud_adapter._base import CloudVerifier, check_response
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
    "Text",
    "TokenIds",
    "TopK",
    "Usage",
    "VerifyParams",
    "VerifyRequest",
    "VerifyResponse",
    "check_response",
]
