"""The decoding engine: SpecSteer's draft / verify / recover loop and the methods it is compared with.

All five methods run through the same backends and the same ``CloudVerifier`` seam, so a benchmark
compares like with like:

* ``specsteer``    -- draft K tokens with the private context, verify in the cloud, steer recovery;
* ``device_only``  -- the device model with the private context, no cloud;
* ``cloud_only``   -- the cloud model without the context (one call: it generates everything);
* ``token_fusion`` -- every token from ``softmax_S(h_L + beta (h_S - h_S0))``: SpecSteer with an
  empty draft, one cloud call per token;
* ``speculative``  -- standard speculative decoding: the context-free device model drafts for the
  cloud model (target = cloud model without context).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import torch
from pydantic import BaseModel

from specsteer._config import GenerationConfig
from specsteer._egress import PrivateEgress
from specsteer._errors import (
    CloudError,
    ConfigurationError,
    PrivacyViolation,
)
from specsteer._methods import strategy_for
from specsteer._prompt import Prompt
from specsteer._result import GenerationResult, GenerationStats, RoundStat
from specsteer._rounds import Rounds
from specsteer._rounds import request_id as _request_id
from specsteer._wire import IdsWire, IncrementalText, TextWire
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter import (
    CloudVerifier,
    GenerateParams,
    GenerateRequest,
    InProcessVerifier,
    VerifyRequest,
    VerifyResponse,
    check_generate_response,
    check_response,
)

__all__ = ["Decoder", "Wire"]

logger = logging.getLogger(__name__)

#: How drafts travel: token ids (shared tokenizer) or text (cross-vocabulary mode).
Wire = Literal["auto", "ids", "text"]

#: Characters of the accepted answer screened again with each draft: a private span that the new
#: draft completes starts within them.
SCREEN_WINDOW = 1024

#: Hook that carries a request out of the device and returns the cloud's answer.
SendHook = Callable[[VerifyRequest, CloudVerifier], VerifyResponse]


@dataclass
class _Run:
    """Mutable state of one generation."""

    config: GenerationConfig
    out: list[int] = field(default_factory=list)
    #: The cloud's view of ``out``: equal to it unless a span was kept on the device, where it
    #: holds a placeholder instead.
    pub_out: list[int] = field(default_factory=list)
    local_rounds: int = 0
    rounds: list[RoundStat] = field(default_factory=list)
    cloud_calls: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    device_s: float = 0.0
    cloud_s: float = 0.0
    fallback: str | None = None
    finished: bool = False
    #: Decodes the cloud's view of the answer by its new tokens only.
    public_text: IncrementalText = field(default_factory=lambda: IncrementalText(lambda _: ""))

    def meter(self, sent: int, received: int) -> None:
        """Count a payload that leaves the device (its wire bytes), or its answer."""
        self.cloud_calls += sent > 0
        self.bytes_sent += sent
        self.bytes_received += received


_Q = TypeVar("_Q", bound=BaseModel)
_A = TypeVar("_A", bound=BaseModel)


def _metered(run: _Run, request: _Q, encode: Callable[[_Q], bytes], call: Callable[[_Q], _A]) -> _A:
    """``call(request)``, counting the adapter's wire bytes out and the answer's bytes back."""
    run.meter(len(encode(request)), 0)
    response = call(request)
    run.meter(0, len(response.model_dump_json().encode()))
    return response


class Decoder:
    """Runs one generation with a device model and a cloud verifier.

    Args:
        device: the small model on the device.
        cloud: the cloud verifier (``InProcessVerifier`` for the embedded default).
        cloud_backend: the cloud model itself, when it is in this process (taken from an
            ``InProcessVerifier`` when not given): it picks the wire mode and reads
            ``cloud_only`` answers; ``cloud_only`` itself is one generate request to ``cloud``.
        model: the cloud model name put in requests.
        send: hook that carries each request out when there is no ``egress``; default calls
            ``cloud.verify``.
        egress: the privacy layer's door (screens the prompt and each draft, audits and sends
            every request); ``None`` sends requests unscreened.
        wire: ``'ids'`` sends token ids (device and cloud share a tokenizer), ``'text'`` sends
            text (cross-vocabulary mode, any pair of models); ``'auto'`` picks ``'text'`` when the
            cloud model is in this process and its tokenizer differs from the device's, else
            ``'ids'``.
    """

    def __init__(
        self,
        device: ModelBackend,
        cloud: CloudVerifier | None,
        *,
        cloud_backend: ModelBackend | None = None,
        model: str = "default",
        send: SendHook | None = None,
        egress: PrivateEgress | None = None,
        wire: Wire = "auto",
    ) -> None:
        if wire not in ("auto", "ids", "text"):
            raise ConfigurationError(f"wire must be 'auto', 'ids' or 'text', not {wire!r}")
        self.device = device
        self.cloud = cloud
        if cloud_backend is None and isinstance(cloud, InProcessVerifier):
            cloud_backend = cloud.backend
        self.cloud_backend = cloud_backend
        self.model = model
        if send is not None and egress is not None:
            raise ConfigurationError(
                "pass send=... or egress=..., not both: with an egress every request goes out "
                "through it. To watch requests, wrap the verifier (ForwardingVerifier) instead"
            )
        self.send = send
        self.egress = egress
        if egress is not None:
            egress.use_device(device.decode)
        if wire == "auto":
            wire = "ids"
            if cloud_backend is not None:
                mine, theirs = device.tokenizer_fingerprint(), cloud_backend.tokenizer_fingerprint()
                if mine is None or theirs is None:
                    wire = "ids" if device.vocab_size == cloud_backend.vocab_size else "text"
                elif mine != theirs:
                    wire = "text"
        self.wire: Literal["ids", "text"] = wire
        self._fingerprint = device.tokenizer_fingerprint()
        self._private = device.stream()
        self._public = device.stream()

    # -- public ----------------------------------------------------------------------------------

    @property
    def runtimes(self) -> str:
        """What computes each side, for reports: ``device on llama.cpp, cloud on transformers
        (bfloat16)``; a cloud outside this process is named by its verifier."""
        if self.cloud_backend is not None:
            cloud = self.cloud_backend.runtime
        else:
            cloud = f"{self.cloud.destination} verifier" if self.cloud is not None else "none"
        return f"device on {self.device.runtime}, cloud on {cloud}"

    def generate(
        self,
        prompt: Prompt,
        config: GenerationConfig | None = None,
        *,
        on_tokens: Callable[[list[int]], None] | None = None,
    ) -> GenerationResult:
        """Generate a continuation of ``prompt``.

        Args:
            prompt: from :func:`build_prompt`.
            config: how to decode; defaults to ``GenerationConfig()``.
            on_tokens: called with each batch of tokens as soon as they are final (streaming).
        """
        cfg = config or GenerationConfig()
        if cfg.method in ("specsteer", "token_fusion", "speculative") and self.cloud is None:
            raise ConfigurationError(
                f"method {cfg.method!r} needs a cloud verifier; pass cloud=... or use "
                "method='device_only'"
            )
        can_generate = self.cloud is not None and self.cloud.can_generate
        if cfg.method == "cloud_only" and self.cloud_backend is None and not can_generate:
            raise ConfigurationError(
                "method 'cloud_only' needs a cloud that can generate (an InProcessVerifier, "
                "an HttpVerifier or an OpenAICompatibleVerifier), or cloud_backend=..."
            )
        seed = cfg.seed if cfg.seed is not None else secrets.randbits(62)
        gens = [torch.Generator().manual_seed(seed + i) for i in range(3)]
        run = _Run(config=cfg, public_text=IncrementalText(self.device.decode))
        t0 = time.perf_counter()
        emit = on_tokens or (lambda _ids: None)
        if cfg.method == "cloud_only":
            self._cloud_only(prompt, run, gens[0], emit)
        else:
            self._rounds(prompt, run, gens, seed, emit)
        wall = time.perf_counter() - t0
        return self._result(run, wall, self.cloud_backend if cfg.method == "cloud_only" else None)

    def _rounds(
        self,
        prompt: Prompt,
        run: _Run,
        gens: list[torch.Generator],
        seed: int,
        emit: Callable[[list[int]], None],
    ) -> None:
        """Run a device-side method: the rounds of a cloud-verified one, or device-only."""
        cfg = run.config
        private_ids = self.device.encode_chat(prompt.private_dicts())
        public_msgs = prompt.public
        if self.egress is not None:
            public_msgs = self.egress.public_prompt(prompt.public)
        public_ids = self.device.encode_chat([m.model_dump() for m in public_msgs])
        wire = TextWire(self.device) if self.wire == "text" else IdsWire(self.device)
        strategy = None if cfg.method == "device_only" else strategy_for(cfg.method)
        views = (tuple(public_msgs), private_ids, public_ids)
        with ThreadPoolExecutor(1, thread_name_prefix="specsteer-cloud") as pool:
            rounds = Rounds(
                self, run, strategy, wire, views, gens[1:], seed, pool if cfg.pipeline else None
            )
            rounds.loop(emit)

    def _keep_local(
        self,
        run: _Run,
        draft: list[int],
        eos: frozenset[int],
        emit: Callable[[list[int]], None],
        *,
        force: bool = False,
    ) -> bool:
        """Keep this round on the device when its draft carries private text.

        The user gets the drafted tokens; the cloud's view of the accepted text gets the
        guard's placeholder instead. Returns True when the round was kept local.
        """
        if self.egress is None:
            return False
        prefix_text = run.public_text(run.pub_out)
        draft_text = run.public_text(run.pub_out + draft)[len(prefix_text) :]
        # Earlier text was screened with earlier drafts: only its tail can join the new text.
        cut = max(0, len(prefix_text) - SCREEN_WINDOW)
        head, tail = prefix_text[:cut], prefix_text[cut:]
        public = self.egress.screen_draft(tail, draft_text, force=force)
        if public is None:
            return False
        before = len(run.out)
        self._append(run, list(draft), eos, emit)
        run.pub_out = self.device.encode(head + public)
        run.local_rounds += 1
        run.rounds.append(
            RoundStat(
                drafted=len(draft), accepted=len(run.out) - before, recovered=False, local=True
            )
        )
        return True

    def _exchange(self, request: VerifyRequest, run: _Run) -> VerifyResponse | None:
        """Send one request; on a cloud failure switch the run to device-only and say why."""
        assert self.cloud is not None
        t = time.perf_counter()
        try:
            response = self._carry(request, run)
            check_response(request, response, self.device.vocab_size)
        except PrivacyViolation as e:
            run.cloud_s += time.perf_counter() - t
            logger.info("the egress guard kept a round on the device: %s", type(e).__name__)
            return None
        except CloudError as e:
            run.cloud_s += time.perf_counter() - t
            run.fallback = f"{type(e).__name__}: {e}"
            logger.warning("cloud verification failed; continuing on the device only: %s", e)
            return None
        run.cloud_s += time.perf_counter() - t
        return response

    def _carry(self, request: VerifyRequest, run: _Run) -> VerifyResponse:
        """Send ``request`` (through the egress when there is one), counting the wire bytes."""
        assert self.cloud is not None
        if self.egress is not None:
            return self.egress.send(request, self.cloud, meter=run.meter)
        # Unscreened: the adapter's own ``verify`` (which a subclass may override) sends it.
        cloud, send = self.cloud, self.send
        call = cloud.verify if send is None else (lambda r: send(r, cloud))
        return _metered(run, request, cloud.encode, call)

    def _append(
        self, run: _Run, new: list[int], eos: frozenset[int], emit: Callable[[list[int]], None]
    ) -> None:
        if run.config.ignore_eos:  # fixed-length runs (benchmarks): an end token is dropped
            new = [t for t in new if t not in eos]
        room = run.config.max_new_tokens - len(run.out)
        new = new[:room]
        for i, tok in enumerate(new):
            if tok in eos:
                new = new[: i + 1]
                run.finished = True
                break
        run.out.extend(new)
        run.pub_out.extend(new)
        visible = [t for t in new if t not in eos]
        if visible:
            emit(visible)

    # -- cloud only ------------------------------------------------------------------------------

    def _cloud_only(
        self,
        prompt: Prompt,
        run: _Run,
        gen: torch.Generator,
        emit: Callable[[list[int]], None],
    ) -> None:
        """The cloud model answers alone: one generate request through the seam (and the
        egress), sampled as the engine samples, with ``gen``'s seed."""
        cloud = self.cloud
        if cloud is None or not cloud.can_generate:
            assert self.cloud_backend is not None
            cloud = InProcessVerifier(self.cloud_backend)
        cfg = run.config
        public = prompt.public if self.egress is None else self.egress.public_prompt(prompt.public)
        # Token ids come back in the vocabulary of the model that decodes the result.
        reader = self.cloud_backend or self.device
        request = GenerateRequest(
            request_id=_request_id(),
            model=self.model,
            prompt=list(public),
            max_new_tokens=cfg.max_new_tokens,
            params=GenerateParams(
                greedy=cfg.greedy,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                repetition_penalty=cfg.repetition_penalty,
                no_repeat_ngram_size=cfg.no_repeat_ngram_size,
                seed=gen.initial_seed(),
                ignore_eos=cfg.ignore_eos,
            ),
            tokenizer=reader.tokenizer_fingerprint(),
        )
        t = time.perf_counter()
        try:
            if self.egress is not None:
                response = self.egress.generate(request, cloud, meter=run.meter)
            else:
                response = _metered(run, request, cloud.encode_generate, cloud.generate)
            check_generate_response(request, response, reader.vocab_size)
        except (CloudError, PrivacyViolation) as e:
            run.cloud_s += time.perf_counter() - t
            run.fallback = f"{type(e).__name__}: {e}"
            logger.warning("the cloud could not answer; nothing was generated: %s", e)
            return
        run.cloud_s += time.perf_counter() - t
        eos = reader.eos_token_ids
        ids = response.token_ids
        if ids is None:  # another vocabulary: the reader's tokens of the text
            end = [min(eos)] if response.finish_reason == "eos" and eos else []
            ids = reader.encode(response.text) + end
        self._append(run, list(ids), eos, emit)

    def _result(self, run: _Run, wall: float, decoder: ModelBackend | None) -> GenerationResult:
        model = decoder or self.device
        eos = model.eos_token_ids
        finish: Literal["eos", "length"] = "eos" if run.out and run.out[-1] in eos else "length"
        text_ids = [t for t in run.out if t not in eos]
        stats = GenerationStats(
            method=run.config.method,
            new_tokens=len(run.out),
            rounds=tuple(run.rounds),
            cloud_calls=run.cloud_calls,
            bytes_sent=run.bytes_sent,
            bytes_received=run.bytes_received,
            device_seconds=run.device_s,
            cloud_seconds=run.cloud_s,
            wall_seconds=wall,
            fallback=run.fallback,
        )
        text = model.decode(text_ids).strip()
        if self.egress is not None:
            text = self.egress.restore(text)
        return GenerationResult(
            text=text,
            token_ids=tuple(run.out),
            finish_reason=finish,
            stats=stats,
            privacy=self.egress.report() if self.egress is not None else None,
        )
