"""The cloud seam: one abstract method, ``verify``."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

from specsteer._errors import ProtocolError
from specsteer.cloud_adapter.protocol import TokenIds, VerifyRequest, VerifyResponse

__all__ = ["CloudVerifier", "check_response"]


class CloudVerifier(ABC):
    """Verifies a device draft with the cloud model, never seeing the private context.

    Adapters implement :meth:`verify`; everything else is written once on top of it.
    """

    #: Human-readable name of where payloads go (used in audit records and results).
    destination: str = "cloud"

    @abstractmethod
    def verify(self, request: VerifyRequest) -> VerifyResponse:
        """Run the ratio test on ``request.draft`` and return the top-k at the first rejection.

        Raises:
            CloudError: the cloud could not be reached or answered badly.
        """

    def close(self) -> None:
        """Release connections or models held by the adapter."""

    def __enter__(self) -> CloudVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_response(
    request: VerifyRequest, response: VerifyResponse, vocab_size: int | None = None
) -> VerifyResponse:
    """Check a response against its request before it touches decoding state.

    Raises:
        ProtocolError: ids out of range, wrong request id, ``n_accepted`` beyond the draft,
            a top-k larger than requested or holding more than all the probability, or a top-k of the wrong kind.
    """
    if response.request_id != request.request_id:
        raise ProtocolError(
            f"response answers request {response.request_id!r}, expected {request.request_id!r}"
        )
    if response.n_accepted > request.n_draft:
        raise ProtocolError(
            f"n_accepted={response.n_accepted} exceeds the draft length {request.n_draft}"
        )
    token_mode = isinstance(request.draft, TokenIds)
    if token_mode and response.top_k.ids is None:
        raise ProtocolError("token-id request answered with top-k strings")
    if not token_mode and response.top_k.strings is None:
        raise ProtocolError("text request answered with top-k ids")
    if token_mode and vocab_size is not None:
        bad = [i for i in response.top_k.ids or [] if i >= vocab_size]
        if bad:
            raise ProtocolError(f"top-k id {bad[0]} is outside the vocabulary ({vocab_size})")
    n_top = len(response.top_k.logprobs)
    if n_top > request.params.top_k:
        raise ProtocolError(
            f"top-k holds {n_top} candidates, more than the {request.params.top_k} requested"
        )
    # The candidates are distinct outcomes of one distribution: their mass cannot exceed 1.
    mass = math.fsum(math.exp(lp) for lp in response.top_k.logprobs)
    if not mass <= 1.0 + 1e-3:
        raise ProtocolError(f"top-k probabilities sum to {mass:.4g}, more than 1")
    if response.top_k.ids is not None and len(set(response.top_k.ids)) != len(response.top_k.ids):
        raise ProtocolError("top-k ids repeat")
    strings = response.top_k.strings
    if strings is not None and len(set(strings)) != len(strings):
        raise ProtocolError("top-k strings repeat")
    return response
