"""``InProcessVerifier``: the cloud model in the same process (the embedded default)."""

from __future__ import annotations

from specsteer._errors import ProtocolError
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter._base import CloudVerifier
from specsteer.cloud_adapter._verify import VerifierCore
from specsteer.cloud_adapter.protocol import (
    GenerateRequest,
    GenerateResponse,
    VerifyRequest,
    VerifyResponse,
)

__all__ = ["InProcessVerifier"]


class InProcessVerifier(CloudVerifier):
    """Verifies with a model held in this process.

    Requests and responses still cross a serialization boundary (JSON bytes, validated on both
    sides), exactly as over HTTP, so byte counts and validation match the networked adapters.

    Args:
        llm: the cloud model.
        slm: optional copy of the public device model, for ``ctxfree_source='cloud'``.
    """

    destination = "in-process"
    can_generate = True

    def __init__(self, llm: ModelBackend, slm: ModelBackend | None = None) -> None:
        self.core = VerifierCore(llm, slm)

    @property
    def backend(self) -> ModelBackend:
        """The cloud model."""
        return self.core.llm

    def verify(self, request: VerifyRequest) -> VerifyResponse:
        return self.transmit(request, self.encode(request))

    def transmit(self, request: VerifyRequest, wire: bytes) -> VerifyResponse:
        try:
            response = self.core.verify(VerifyRequest.model_validate_json(wire))
        except ValueError as e:
            raise ProtocolError(f"the verifier rejected the request: {e}") from e
        return VerifyResponse.model_validate_json(response.model_dump_json().encode())

    def transmit_generate(self, request: GenerateRequest, wire: bytes) -> GenerateResponse:
        try:
            response = self.core.generate(GenerateRequest.model_validate_json(wire))
        except ValueError as e:
            raise ProtocolError(f"the cloud model could not generate: {e}") from e
        return GenerateResponse.model_validate_json(response.model_dump_json().encode())
