"""``OpenAICompatibleVerifier``: verify against any server with vLLM's ``prompt_logprobs``.

The server only scores tokens; the ratio test runs here, on the device, with the same pure
functions the reference server uses (:mod:`specsteer.fusion`). One ``/v1/completions`` call per
round sends ``prompt + prefix + draft`` as token ids with ``max_tokens=1``, ``prompt_logprobs=k``
and ``logprobs=k``:

* ``prompt_logprobs[i]`` holds the log-probability of prompt token ``i`` itself plus the top-k at
  that position -- so ``log P_L(d_i)`` of every draft token, and the top-k at any rejection;
* the one generated token's ``top_logprobs`` is the top-k after the whole draft (the bonus
  position, used when every draft token passes).

A draft token is always scored with its own returned log-probability (vLLM returns the actual
prompt token alongside the top-N); a response without it is rejected, never read as probability 0.
Every request pins the sampling settings that would change the scores (:data:`._vllm.SCORE_PINS`).
``cloud_only`` is one plain completions call (:mod:`._openai_generate`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import torch
from pydantic import ValidationError

from specsteer import fusion
from specsteer._errors import ConfigurationError, ProtocolError, summarize_validation
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter import _openai_generate, _openai_text, _vllm
from specsteer.cloud_adapter._base import check_response
from specsteer.cloud_adapter._http import (
    MAX_RESPONSE_BYTES,
    CircuitBreaker,
    HttpAdapter,
    HttpChannel,
)
from specsteer.cloud_adapter.protocol import (
    DraftScores,
    GenerateRequest,
    GenerateResponse,
    Text,
    TokenIds,
    TopK,
    Usage,
    VerifyRequest,
    VerifyResponse,
)

__all__ = ["OpenAICompatibleVerifier"]

logger = logging.getLogger(__name__)

#: Bytes one returned log-probability may take in vLLM's JSON: the id key, ``logprob``, ``rank``
#: and ``decoded_token`` (a token of up to ~16 characters, JSON-escaped). Generous on purpose.
BYTES_PER_LOGPROB = 256


class OpenAICompatibleVerifier(HttpAdapter):
    """Verifies drafts with any OpenAI-compatible server that has vLLM's ``prompt_logprobs``.

    Token ids are sent when the device shares the served model's tokenizer; text requests
    (cross-vocabulary mode) are sent as text and aligned with the echoed token ids
    (:mod:`._openai_text`). The server returns log-probabilities at temperature 1 (vLLM's
    default ``raw_logprobs``), so requests must use ``temperature=1``.

    Args:
        base_url: the server root, e.g. ``http://gpu-host:8000`` or ``http://gpu-host:8000/v1``
            (both reach ``/v1/completions``).
        model: the model name the server serves.
        tokenizer: a backend with the served model's tokenizer (for token ids, usually the
            device model itself); it renders the public chat with the chat template, finds
            token boundaries in text mode, and gives the vocabulary size.
        token: the server's API key, sent as a bearer token.
        timeout: seconds one attempt may take, from connecting to the last byte of the answer.
        connect_timeout: seconds to establish a connection.
        retries: extra attempts after a connect error, timeout or 502/503/504.
        backoff: base backoff delay in seconds.
        breaker_threshold: consecutive failed calls that open the circuit.
        breaker_cooldown: seconds the open circuit fails calls without trying.
        breaker_clock: the circuit breaker's monotonic time source (injectable for tests).
        max_logprobs: the server's ``--max-logprobs`` (vLLM's default is 20): vLLM refuses a
            ``logprobs`` or ``prompt_logprobs`` above it.
        clamp_top_k: ask for at most ``max_logprobs`` candidates when a request's ``top_k`` is
            larger (logged once; recovery then picks from fewer candidates); ``False`` refuses
            such requests instead, before anything is sent.
        max_response_bytes: a fixed cap on one answer; by default the cap grows with the
            request (``prompt_logprobs`` hold ``top_k + 1`` entries per prompt token).
        generate_timeout: seconds one ``cloud_only`` call may take (it writes a whole answer).
        path: the completions path.
        client: an ``httpx.Client`` to reuse (the caller keeps ownership).
        transport: an ``httpx`` transport for the client built here.
        insecure_http: allow plain ``http://`` to a host that is not loopback (the API key and
            drafts then travel unencrypted); refused without it.
    """

    can_generate = True
    scores_every_position = True

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        tokenizer: ModelBackend,
        token: str | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 3.0,
        retries: int = 2,
        backoff: float = 0.05,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 30.0,
        breaker_clock: Callable[[], float] = time.monotonic,
        max_logprobs: int = 20,
        clamp_top_k: bool = True,
        max_response_bytes: int | None = None,
        generate_timeout: float = 300.0,
        path: str = "/v1/completions",
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        insecure_http: bool = False,
    ) -> None:
        if max_logprobs < 1:
            raise ConfigurationError("max_logprobs must be >= 1 (vLLM's --max-logprobs)")
        if not generate_timeout > 0:
            raise ConfigurationError("generate_timeout must be > 0 seconds")
        self.channel = HttpChannel(
            base_url,
            token=token,
            timeout=timeout,
            connect_timeout=connect_timeout,
            retries=retries,
            backoff=backoff,
            max_response_bytes=max_response_bytes or MAX_RESPONSE_BYTES,
            breaker=CircuitBreaker(breaker_threshold, breaker_cooldown, clock=breaker_clock),
            client=client,
            transport=transport,
            insecure_http=insecure_http,
        )
        self.model = model
        self.tokenizer = tokenizer
        self.path = path
        self.max_logprobs = max_logprobs
        self.clamp_top_k = clamp_top_k
        self.scale_response_cap = max_response_bytes is None
        self.destination = self.channel.base_url
        self.generate_timeout = generate_timeout
        self._warned_clamp = False

    def n_logprobs(self, top_k: int) -> int:
        """The ``logprobs`` N to ask for: ``top_k``, clamped to ``max_logprobs`` (or refused).

        Raises:
            ProtocolError: ``top_k`` is above ``max_logprobs`` and ``clamp_top_k`` is off.
        """
        if top_k <= self.max_logprobs:
            return top_k
        if not self.clamp_top_k:
            raise ProtocolError(
                f"top_k={top_k} is above the server's max_logprobs={self.max_logprobs}; use "
                f"top_k <= {self.max_logprobs}, or start vLLM with --max-logprobs {top_k} and "
                f"pass max_logprobs={top_k}"
            )
        if not self._warned_clamp:
            self._warned_clamp = True
            logger.warning(
                "top_k=%d is above the server's max_logprobs=%d; asking for %d candidates "
                "(pass max_logprobs=... to match vLLM's --max-logprobs)",
                top_k,
                self.max_logprobs,
                self.max_logprobs,
            )
        return self.max_logprobs

    def completion_body(self, request: VerifyRequest) -> dict[str, Any]:
        """The ``/v1/completions`` body for ``request``.

        Raises:
            ProtocolError: the request cannot be verified this way (temperature,
                repetition control, missing ``ctxfree_logprobs``, ``top_k`` above
                ``max_logprobs`` without clamping).
        """
        params = request.params
        if params.temperature != 1.0:
            raise ProtocolError(
                "OpenAI-compatible servers return log-probabilities at temperature 1; "
                "use temperature=1.0 with this adapter"
            )
        if params.processing.penalizes:
            raise ProtocolError(
                "OpenAI-compatible servers return unprocessed log-probabilities, so repetition "
                "control cannot apply to the cloud's side; use repetition_penalty=1.0 and "
                "no_repeat_ngram_size=0 with this adapter"
            )
        needs_ctxfree = isinstance(request.draft, Text) or not params.uses_argmax
        needs_ctxfree = needs_ctxfree and params.verdict == "cloud"
        if request.n_draft and request.ctxfree_logprobs is None and needs_ctxfree:
            raise ProtocolError(
                "an OpenAI-compatible server hosts no copy of the device model; send "
                "ctxfree_logprobs (ctxfree_source='device')"
            )
        n = self.n_logprobs(params.top_k)
        if isinstance(request.draft, Text):
            return self._text_body(request, n)
        assert isinstance(request.prefix, TokenIds) and isinstance(request.draft, TokenIds)
        prompt_ids = self.tokenizer.encode_chat([m.model_dump() for m in request.prompt])
        if not prompt_ids and not request.prefix.ids:
            raise ProtocolError("the prompt renders to no tokens")
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": [*prompt_ids, *request.prefix.ids, *request.draft.ids],
            "max_tokens": 1,
            "temperature": 0.0,
            **_vllm.SCORE_PINS,
            "logprobs": n,
            "echo": False,
            "return_tokens_as_token_ids": True,
        }
        if request.draft.ids:
            body["prompt_logprobs"] = n
        return body

    def _text_body(self, request: VerifyRequest, n: int) -> dict[str, Any]:
        """Cross-vocabulary mode: the text itself, every prompt token echoed back as an id."""
        return {
            "model": self.model,
            "prompt": _openai_text.prompts(self.tokenizer, request),
            "max_tokens": 1,
            "temperature": 0.0,
            **_vllm.SCORE_PINS,
            "logprobs": n,
            "prompt_logprobs": n,
            "echo": True,
            "add_special_tokens": False,
            "return_tokens_as_token_ids": True,
        }

    def encode(self, request: VerifyRequest) -> bytes:
        return json.dumps(self.completion_body(request), separators=(",", ":")).encode()

    def encode_generate(self, request: GenerateRequest) -> bytes:
        body = _openai_generate.generate_body(self.tokenizer, self.model, request)
        return json.dumps(body, separators=(",", ":")).encode()

    def transmit_generate(self, request: GenerateRequest, wire: bytes) -> GenerateResponse:
        t0 = time.perf_counter()

        def parse(data: bytes) -> GenerateResponse:
            try:
                elapsed = time.perf_counter() - t0
                return _openai_generate.read_answer(self.tokenizer, request, data, elapsed)
            except ValidationError as e:
                raise ProtocolError(
                    f"unusable completion response: {summarize_validation(e)}"
                ) from e

        return self.channel.call(self.path, wire, parse, timeout=self.generate_timeout)

    def response_cap(self, body: dict[str, Any]) -> int | None:
        """The answer size this body may need (``None``: the channel's fixed cap)."""
        if not self.scale_response_cap:
            return None
        prompt = body["prompt"]
        texts = [prompt] if isinstance(prompt, str) else prompt
        # Text prompts: at most one token per character; echo returns each position twice.
        rows = sum(len(p) for p in texts) if isinstance(texts[0], str) else len(prompt)
        rows = rows * (2 if body.get("echo") else 1) if "prompt_logprobs" in body else 1
        n_top: int = body["logprobs"]
        return 64 * 1024 + rows * (n_top + 2) * BYTES_PER_LOGPROB

    def transmit(self, request: VerifyRequest, wire: bytes) -> VerifyResponse:
        # The answer is read against the body that was sent, not one rebuilt from the request.
        body = json.loads(wire)
        start = len(body["prompt"]) - request.n_draft
        t0 = time.perf_counter()

        def parse(data: bytes) -> VerifyResponse:
            elapsed = time.perf_counter() - t0
            if isinstance(request.draft, Text):
                return self._decide_text(request, data, body, elapsed)
            return self._decide(request, data, start, body["logprobs"], elapsed)

        return self.channel.call(self.path, wire, parse, max_response_bytes=self.response_cap(body))

    def _decide(
        self, request: VerifyRequest, data: bytes, start: int, n_top: int, elapsed: float
    ) -> VerifyResponse:
        """Judge the draft on the returned log-probabilities and build the response.

        ``n_top`` is the ``logprobs`` N that was asked for: the support is the top ``n_top``
        (a draft token's own entry, returned beside them, is no candidate unless it ranks).
        """
        assert isinstance(request.draft, TokenIds)
        choice = _vllm.one_choice(data)
        draft = list(request.draft.ids)
        entries = _draft_entries(choice, draft, start)

        def candidates(i: int) -> tuple[list[int], list[float]]:
            if i < len(draft):
                return _vllm.ranked(entries[i], n_top)
            tops = choice.logprobs.top_logprobs if choice.logprobs is not None else None
            if not tops:
                raise ProtocolError("the response carries no top log-probabilities after the draft")
            return _vllm.ranked(_vllm.parse_top(tops[0], "the position after the draft"), n_top)

        scored = fusion.Scored(
            lp_llm=torch.tensor(
                [e[t] for e, t in zip(entries, draft, strict=True)], dtype=torch.float64
            ),
            is_argmax=torch.tensor(
                [_vllm.ranked(e, 1)[0][0] == t for e, t in zip(entries, draft, strict=True)],
                dtype=torch.bool,
            ),
            top_k=candidates,
        )
        vocab = self.tokenizer.vocab_size
        if request.params.verdict == "device":
            return self._scores(request, scored, elapsed, vocab)
        lp0 = request.ctxfree_logprobs
        verdict = request.params.judge(
            scored, None if lp0 is None else torch.tensor(lp0, dtype=torch.float64)
        )
        ids, lps = verdict.top_k
        bad = next((i for i in ids if i >= vocab), None)
        if bad is not None:
            raise ProtocolError(f"top-k id {bad} is outside the vocabulary ({vocab})")
        top = TopK(ids=ids, logprobs=lps)
        return self._respond(request, verdict.n_accepted, top, len(draft) + 1, elapsed, vocab)

    def _scores(
        self,
        request: VerifyRequest,
        scored: fusion.Scored[tuple[list[int], list[float]]],
        elapsed: float,
        vocab: int,
    ) -> VerifyResponse:
        """A device-judged request's answer: the scores of every draft position, unjudged."""
        usage = Usage(server_ms=elapsed * 1000, tokens_scored=request.n_draft + 1)
        try:
            response = VerifyResponse.unjudged(request.request_id, DraftScores.of(scored), usage)
        except ValidationError as e:
            raise ProtocolError(f"unusable completion response: {summarize_validation(e)}") from e
        return check_response(request, response, vocab)

    def _decide_text(
        self, request: VerifyRequest, data: bytes, body: dict[str, Any], elapsed: float
    ) -> VerifyResponse:
        """Cross-vocabulary mode: align the echoed tokens with the draft, then judge it."""
        sent = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        lay = _openai_text.layout(self.tokenizer, request, sent[0])
        found = _vllm.choices(data)
        try:
            scored = _openai_text.scored(
                self.tokenizer, request, found, lay, sent, body["logprobs"]
            )
            ctxfree = torch.tensor(request.ctxfree_logprobs or [], dtype=torch.float64)
            verdict = request.params.judge(scored, ctxfree)
        except ValidationError as e:
            raise ProtocolError(f"unusable completion response: {summarize_validation(e)}") from e
        n_seg = verdict.n_accepted
        n = lay.segs[n_seg - 1].unit_hi if n_seg else 0
        return self._respond(request, n, verdict.top_k, len(lay.ids) - lay.j0 + 1, elapsed, None)

    def _respond(
        self,
        request: VerifyRequest,
        n: int,
        top: TopK,
        scored: int,
        elapsed: float,
        vocab: int | None,
    ) -> VerifyResponse:
        try:
            response = VerifyResponse(
                request_id=request.request_id,
                n_accepted=n,
                top_k=top,
                usage=Usage(server_ms=elapsed * 1000, tokens_scored=scored),
            )
        except ValidationError as e:
            raise ProtocolError(f"unusable completion response: {summarize_validation(e)}") from e
        return check_response(request, response, vocab)


def _draft_entries(choice: _vllm.Choice, draft: list[int], start: int) -> list[dict[int, float]]:
    """The ``prompt_logprobs`` entry of every draft token, each holding the token's own."""
    if not draft:
        return []
    plp = choice.prompt_logprobs
    if plp is None or len(plp) != start + len(draft):
        got = "none" if plp is None else str(len(plp))
        raise ProtocolError(
            f"prompt_logprobs has {got} entries for a prompt of {start + len(draft)} tokens"
        )
    entries = []
    for i, tok in enumerate(draft):
        entry = _vllm.parse_entry(plp[start + i], f"draft position {i}")
        if tok not in entry:
            raise ProtocolError(
                f"the server returned no log-probability for draft token {i}; it must "
                "return each prompt token's own logprob (vLLM does)"
            )
        entries.append(entry)
    return entries
