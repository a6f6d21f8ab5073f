"""``InProcessVerifier``: the cloud model in the same process (the embedded default)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel

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

_Req = TypeVar("_Req", bound=BaseModel)
_Resp = TypeVar("_Resp", bound=BaseModel)


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
    scores_every_position = True
    computes_here = True

    def __init__(self, llm: ModelBackend, slm: ModelBackend | None = None) -> None:
        self.core = VerifierCore(llm, slm)

    @property
    def backend(self) -> ModelBackend:
        """The cloud model."""
        return self.core.llm

    def verify(self, request: VerifyRequest) -> VerifyResponse:
        return self.transmit(request, self.encode(request))

    def transmit(self, request: VerifyRequest, wire: bytes) -> VerifyResponse:
        return _round_trip(
            wire,
            VerifyRequest,
            self.core.verify,
            VerifyResponse,
            "the verifier rejected the request",
        )

    def transmit_generate(self, request: GenerateRequest, wire: bytes) -> GenerateResponse:
        return _round_trip(
            wire,
            GenerateRequest,
            self.core.generate,
            GenerateResponse,
            "the cloud model could not generate",
        )


def _round_trip(
    wire: bytes, parse: type[_Req], serve: Callable[[_Req], _Resp], answer: type[_Resp], fail: str
) -> _Resp:
    """Parse ``wire`` as the cloud would, serve it, and send the answer back as JSON bytes."""
    try:
        response = serve(parse.model_validate_json(wire))
    except ValueError as e:
        raise ProtocolError(f"{fail}: {e}") from e
    return answer.model_validate_json(response.model_dump_json().encode())
