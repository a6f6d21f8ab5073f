"""``cloud_only`` over vLLM's ``/v1/completions``: the served model writes the answer alone.

One plain completions call: the public chat rendered with the served model's chat template (by
the tokenizer the adapter holds) as token ids, ``max_tokens``, the device's temperature and
``top_p`` (greedy: temperature 0), the scores pinned as in verification
(:data:`._vllm.SCORE_PINS`), and ``logprobs: 0`` with ``return_tokens_as_token_ids`` so the answer
comes back as ids too. vLLM's penalties are not the device's (they count the prompt as well), so
a request asking for repetition control is refused before anything is sent; a seeded draw is
vLLM's own, so only greedy answers match the in-process ones token for token.
"""

from __future__ import annotations

from typing import Any, Literal

from specsteer._errors import ProtocolError
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter import _vllm
from specsteer.cloud_adapter._base import check_generate_response
from specsteer.cloud_adapter.protocol import GenerateRequest, GenerateResponse, GenerateUsage

__all__ = ["generate_body", "read_answer"]


def generate_body(tokenizer: ModelBackend, model: str, request: GenerateRequest) -> dict[str, Any]:
    """The ``/v1/completions`` body that writes the answer to ``request``.

    Raises:
        ProtocolError: the request asks for repetition control (nothing was sent).
    """
    params = request.params
    if params.processing.penalizes:
        raise ProtocolError(
            "an OpenAI-compatible server penalizes repetition over the prompt as well, not as "
            "the device does; use repetition_penalty=1.0 and no_repeat_ngram_size=0 with this "
            "adapter"
        )
    prompt_ids = tokenizer.encode_chat([m.model_dump() for m in request.prompt])
    if not prompt_ids:
        raise ProtocolError("the prompt renders to no tokens")
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompt_ids,
        "max_tokens": request.max_new_tokens,
        **_vllm.SCORE_PINS,
        "temperature": 0.0 if params.greedy else params.temperature,
        "top_p": 1.0 if params.greedy else params.top_p,
        "logprobs": 0,
        "echo": False,
        "return_tokens_as_token_ids": True,
    }
    if params.seed is not None and not params.greedy:
        body["seed"] = params.seed
    if params.ignore_eos:
        body["ignore_eos"] = True
    return body


def read_answer(
    tokenizer: ModelBackend, request: GenerateRequest, data: bytes, elapsed: float
) -> GenerateResponse:
    """The completions answer as a checked :class:`GenerateResponse`."""
    found = _vllm.completion(data)
    if len(found.choices) != 1:
        raise ProtocolError(f"expected one choice, got {len(found.choices)}")
    choice = found.choices[0]
    tokens = choice.logprobs.tokens if choice.logprobs is not None else None
    ids = [_token_id(t) for t in tokens or []]
    eos = sorted(tokenizer.eos_token_ids)
    finish: Literal["eos", "length"] = "eos" if choice.finish_reason == "stop" else "length"
    if finish == "eos" and eos and (not ids or ids[-1] not in eos):
        ids.append(eos[0])  # the answer ended at the model's end token
    shared = (
        request.tokenizer is not None and request.tokenizer == tokenizer.tokenizer_fingerprint()
    )
    usage = found.usage
    response = GenerateResponse(
        request_id=request.request_id,
        text=choice.text,
        token_ids=ids if shared and tokens is not None else None,
        finish_reason=finish,
        usage=GenerateUsage(
            server_ms=elapsed * 1000,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else len(ids),
        ),
    )
    return check_generate_response(request, response, tokenizer.vocab_size)


def _token_id(token: str) -> int:
    prefix, _, num = token.partition("token_id:")
    if prefix or not num.isdigit():
        raise ProtocolError(
            "the server answered with token strings, not ids; it must support "
            "return_tokens_as_token_ids (vLLM does)"
        )
    return int(num)
