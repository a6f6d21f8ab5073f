"""The cloud seam: one abstract method, ``verify``, and the two steps the egress guard sees.

``verify(request)`` is ``transmit(request, encode(request))``; ``generate(request)`` (the cloud
model answering alone, for ``cloud_only``) is ``transmit_generate(request,
encode_generate(request))`` on adapters whose cloud can generate. The egress guard calls the two
halves itself: it scans and audits the bytes ``encode`` returns -- the exact bytes the adapter
puts on the network, whatever their shape (a ``VerifyRequest``, a vLLM completions body) -- and
only then hands those same bytes to ``transmit``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

from specsteer._errors import ConfigurationError, ProtocolError
from specsteer.cloud_adapter.protocol import (
    GenerateRequest,
    GenerateResponse,
    TokenIds,
    TopK,
    VerifyRequest,
    VerifyResponse,
)

__all__ = ["CloudVerifier", "ForwardingVerifier", "check_generate_response", "check_response"]


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

    def encode(self, request: VerifyRequest) -> bytes:
        """The exact bytes this adapter sends for ``request`` (by default its JSON).

        Raises:
            ProtocolError: the adapter cannot carry this request (nothing was sent).
        """
        return request.model_dump_json().encode()

    def transmit(self, request: VerifyRequest, wire: bytes) -> VerifyResponse:
        """Send ``wire`` -- ``encode(request)``, unchanged -- and return the checked answer.

        ``request`` is used only to read the answer (request id, draft, device-side scores);
        nothing of it leaves but ``wire``. By default the bytes are parsed back and verified.

        Raises:
            CloudError: the cloud could not be reached or answered badly.
        """
        return self.verify(VerifyRequest.model_validate_json(wire))

    #: Whether the cloud behind this adapter can write an answer alone (:meth:`generate`).
    can_generate: bool = False

    #: Whether the cloud behind this adapter answers ``verdict='device'`` requests with its
    #: scores of every draft position (the reference verifier does), so the device can judge.
    scores_every_position: bool = False

    #: Whether the cloud's model computes on this machine's CPU (in this process, or a reference
    #: server on a loopback address): drafting the next round while it verifies would then take
    #: its cores, so generation does not pipeline by default (``GenerationConfig.pipeline``).
    computes_here: bool = False

    def generate(self, request: GenerateRequest) -> GenerateResponse:
        """The cloud model's own answer to ``request.prompt`` (``method='cloud_only'``).

        Raises:
            ConfigurationError: this cloud cannot generate (nothing was sent).
            CloudError: the cloud could not be reached or answered badly.
        """
        return self.transmit_generate(request, self.encode_generate(request))

    def encode_generate(self, request: GenerateRequest) -> bytes:
        """The exact bytes this adapter sends for a generate request.

        Raises:
            ConfigurationError: this cloud cannot generate (nothing was sent).
        """
        if not self.can_generate:
            raise ConfigurationError(
                f"this cloud ({type(self).__name__}) cannot generate an answer on its own, so "
                "method='cloud_only' cannot use it; use an InProcessVerifier, an HttpVerifier "
                "(reference server) or an OpenAICompatibleVerifier, or another method"
            )
        return request.model_dump_json().encode()

    def transmit_generate(self, request: GenerateRequest, wire: bytes) -> GenerateResponse:
        """Send ``wire`` -- ``encode_generate(request)``, unchanged -- and return the answer.

        Raises:
            ConfigurationError: this cloud cannot generate.
            CloudError: the cloud could not be reached or answered badly.
        """
        raise ConfigurationError(
            f"this cloud ({type(self).__name__}) cannot generate an answer on its own"
        )

    def close(self) -> None:
        """Release connections or models held by the adapter."""

    def __enter__(self) -> CloudVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ForwardingVerifier(CloudVerifier):
    """Hands every call to ``inner``: subclass it to observe, delay or count another adapter's
    calls (override :meth:`transmit`). The bytes on the wire, and in the audit log, stay
    ``inner``'s own.

    Args:
        inner: the adapter that does the work.
    """

    def __init__(self, inner: CloudVerifier) -> None:
        self.inner = inner
        self.destination = inner.destination
        self.can_generate = inner.can_generate
        self.scores_every_position = inner.scores_every_position
        self.computes_here = inner.computes_here

    def encode(self, request: VerifyRequest) -> bytes:
        return self.inner.encode(request)

    def transmit(self, request: VerifyRequest, wire: bytes) -> VerifyResponse:
        return self.inner.transmit(request, wire)

    def verify(self, request: VerifyRequest) -> VerifyResponse:
        return self.transmit(request, self.encode(request))

    def encode_generate(self, request: GenerateRequest) -> bytes:
        return self.inner.encode_generate(request)

    def transmit_generate(self, request: GenerateRequest, wire: bytes) -> GenerateResponse:
        return self.inner.transmit_generate(request, wire)

    def close(self) -> None:
        self.inner.close()


def check_response(
    request: VerifyRequest, response: VerifyResponse, vocab_size: int | None = None
) -> VerifyResponse:
    """Check a response against its request before it touches decoding state.

    Raises:
        ProtocolError: ids out of range, wrong request id, ``n_accepted`` beyond the draft,
            a top-k larger than requested or holding more than all the probability, a top-k of
            the wrong kind, or scores of every position missing where asked for (or sent where
            not).
    """
    if response.request_id != request.request_id:
        raise ProtocolError(
            f"response answers request {response.request_id!r}, expected {request.request_id!r}"
        )
    if response.n_accepted > request.n_draft:
        raise ProtocolError(
            f"n_accepted={response.n_accepted} exceeds the draft length {request.n_draft}"
        )
    _check_top_k(request, response.top_k, vocab_size)
    _check_scores(request, response, vocab_size)
    _check_samples(request, response, vocab_size)
    judged = response.judged
    if judged is not None and not response.n_accepted < judged <= request.n_draft + 1:
        raise ProtocolError(
            f"judged={judged} must lie past n_accepted={response.n_accepted} and within the "
            f"draft's {request.n_draft} units (and its end)"
        )
    return response


def _check_top_k(request: VerifyRequest, top_k: TopK, vocab_size: int | None) -> None:
    """Candidates of the request's kind, within the vocabulary and the size asked for,
    distinct, and holding no more than all the probability."""
    token_mode = isinstance(request.draft, TokenIds)
    if token_mode and top_k.ids is None:
        raise ProtocolError("token-id request answered with top-k strings")
    if not token_mode and top_k.strings is None:
        raise ProtocolError("text request answered with top-k ids")
    if token_mode and vocab_size is not None:
        bad = [i for i in top_k.ids or [] if i >= vocab_size]
        if bad:
            raise ProtocolError(f"top-k id {bad[0]} is outside the vocabulary ({vocab_size})")
    n_top = len(top_k.logprobs)
    if n_top > request.params.top_k:
        raise ProtocolError(
            f"top-k holds {n_top} candidates, more than the {request.params.top_k} requested"
        )
    # The candidates are distinct outcomes of one distribution: their mass cannot exceed 1.
    mass = math.fsum(math.exp(lp) for lp in top_k.logprobs)
    if not mass <= 1.0 + 1e-3:
        raise ProtocolError(f"top-k probabilities sum to {mass:.4g}, more than 1")
    if top_k.ids is not None and len(set(top_k.ids)) != len(top_k.ids):
        raise ProtocolError("top-k ids repeat")
    strings = top_k.strings
    if strings is not None and len(set(strings)) != len(strings):
        raise ProtocolError("top-k strings repeat")


def _check_scores(request: VerifyRequest, response: VerifyResponse, vocab_size: int | None) -> None:
    """A device-judged request needs the scores of every draft position; no other gets them."""
    scores = response.scores
    if request.params.verdict != "device":
        if scores is not None:
            raise ProtocolError("the cloud sent scores the request did not ask for")
        return
    if scores is None:
        raise ProtocolError(
            "the request asked for the scores of every draft position (verdict='device') and "
            "the cloud sent none: it may not support them; set device_verdict=False"
        )
    if len(scores.logprobs) != request.n_draft:
        raise ProtocolError(
            f"the cloud scored {len(scores.logprobs)} draft tokens of {request.n_draft}"
        )
    for top in scores.top_k:
        _check_top_k(request, top, vocab_size)


def _check_samples(
    request: VerifyRequest, response: VerifyResponse, vocab_size: int | None
) -> None:
    """Draws the request did not ask for, more than it asked for, or ids outside the
    vocabulary are refused."""
    samples = response.samples
    if samples is None:
        return
    if not isinstance(request.draft, TokenIds) or len(samples.ids) > request.params.samples:
        raise ProtocolError(
            f"the cloud sent {len(samples.ids)} draws; the request asked for "
            f"{request.params.samples if isinstance(request.draft, TokenIds) else 0}"
        )
    bad = [i for i in samples.ids if vocab_size is not None and i >= vocab_size]
    if bad:
        raise ProtocolError(f"drawn id {bad[0]} is outside the vocabulary ({vocab_size})")


def check_generate_response(
    request: GenerateRequest, response: GenerateResponse, vocab_size: int | None = None
) -> GenerateResponse:
    """Check a generate answer against its request before the engine uses it.

    Raises:
        ProtocolError: wrong request id, more tokens than asked for, token ids the request did
            not ask for, or ids outside ``vocab_size``.
    """
    if response.request_id != request.request_id:
        raise ProtocolError(
            f"response answers request {response.request_id!r}, expected {request.request_id!r}"
        )
    ids = response.token_ids
    if ids is None:
        return response
    if request.tokenizer is None:
        raise ProtocolError("the cloud sent token ids the request did not ask for")
    if len(ids) > request.max_new_tokens:
        raise ProtocolError(f"{len(ids)} tokens answer a request for {request.max_new_tokens}")
    bad = next((i for i in ids if vocab_size is not None and i >= vocab_size), None)
    if bad is not None:
        raise ProtocolError(f"token id {bad} is outside the vocabulary ({vocab_size})")
    return response
