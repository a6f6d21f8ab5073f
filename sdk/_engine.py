"""The decoding engine's facade: one generation, from a prompt to a result, as round events.

Every method of :data:`specsteer._methods.METHODS` runs through the same backends and the same
``CloudVerifier`` seam, so a benchmark compares like with like. The stages are
:class:`~specsteer._drafter.Drafter` (the device), :class:`~specsteer._link.CloudLink` (the cloud,
through the egress guard) and the recovery functions; :class:`~specsteer._loop.RoundLoop` runs
them and emits :mod:`specsteer._events`, which :class:`Decoder` folds into the result.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import torch

from specsteer._answer import Answer
from specsteer._closing import with_sign_off
from specsteer._config import GenerationConfig
from specsteer._drafter import Drafter
from specsteer._egress import PrivateEgress
from specsteer._errors import ConfigurationError
from specsteer._events import DeviceWork, Fallback, Finished, RoundEvent, StatsFold, Tokens
from specsteer._guards import TextGuard, TextGuards
from specsteer._link import CloudLink, Failed, request_id
from specsteer._loop import RoundLoop
from specsteer._methods import MethodSpec, method_spec
from specsteer._opening import RefusalGuard, ai_guard, opening_without_refusal
from specsteer._perspective import owner_guard
from specsteer._prompt import Prompt
from specsteer._recital import RecitalGuard
from specsteer._recover import Steering
from specsteer._result import GenerationResult, GenerationStats
from specsteer._wire import IdsWire, TextWire, WireFormat
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter import (
    ChatMessage,
    CloudVerifier,
    ForwardingVerifier,
    GenerateParams,
    GenerateRequest,
    InProcessVerifier,
    VerifyParams,
    VerifyRequest,
    VerifyResponse,
)

__all__ = ["Decoder", "Wire"]

#: How drafts travel: token ids (shared tokenizer) or text (cross-vocabulary mode).
Wire = Literal["auto", "ids", "text"]

#: Hook that carries a request out of the device and returns the cloud's answer.
SendHook = Callable[[VerifyRequest, CloudVerifier], VerifyResponse]


class _Hooked(ForwardingVerifier):
    """A verifier whose verify requests go out through a user's :data:`SendHook`."""

    def __init__(self, inner: CloudVerifier, hook: SendHook) -> None:
        super().__init__(inner)
        self.hook = hook

    def transmit(self, request: VerifyRequest, wire: bytes) -> VerifyResponse:
        return self.hook(request, self.inner)


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
            prompt: from :func:`~specsteer.build_prompt`.
            config: how to decode; defaults to ``GenerationConfig()``.
            on_tokens: called with each batch of tokens as soon as they are final (streaming;
                end tokens left out).
        """
        for event in self.stream(prompt, config):
            if isinstance(event, Tokens) and on_tokens is not None:
                visible = [t for t in event.ids if t not in self._reader(event).eos_token_ids]
                if visible:
                    on_tokens(visible)
            elif isinstance(event, Finished):
                return event.result
        raise AssertionError("a generation ends with a Finished event")

    def stream(
        self, prompt: Prompt, config: GenerationConfig | None = None
    ) -> Iterator[RoundEvent]:
        """Generate a continuation of ``prompt`` as round events; the last is
        :class:`~specsteer._events.Finished` with the result.

        Raises:
            ConfigurationError: the method needs a cloud this decoder does not have.
        """
        cfg = config or GenerationConfig()
        spec = method_spec(cfg.method)
        self._check(spec)
        seed = cfg.seed if cfg.seed is not None else secrets.randbits(62)
        gens = [torch.Generator().manual_seed(seed + i) for i in range(3)]
        reader = (self.cloud_backend or self.device) if spec.cloud == "generate" else self.device
        min_tokens = 0 if spec.cloud == "generate" else cfg.min_new_tokens
        answer = Answer(reader.eos_token_ids, cfg.max_new_tokens, cfg.ignore_eos, min_tokens)
        fold = StatsFold(cfg.method)
        t0 = time.perf_counter()
        if spec.cloud == "generate":
            events = self._cloud_only(prompt, cfg, answer, reader, gens[0])
        else:
            events = self._rounds(prompt, cfg, spec, answer, seed, gens[1:])
        for event in events:
            fold.add(event)
            yield event
        stats = fold.stats(time.perf_counter() - t0)
        yield Finished(self._result(answer, stats, reader))

    # -- the stages --------------------------------------------------------------------------------

    def _check(self, spec: MethodSpec) -> None:
        if spec.cloud == "verify" and self.cloud is None:
            raise ConfigurationError(
                f"method {spec.name!r} needs a cloud verifier; pass cloud=... or use "
                "method='device_only'"
            )
        can_generate = self.cloud is not None and self.cloud.can_generate
        if spec.cloud == "generate" and self.cloud_backend is None and not can_generate:
            raise ConfigurationError(
                "method 'cloud_only' needs a cloud that can generate (an InProcessVerifier, "
                "an HttpVerifier or an OpenAICompatibleVerifier), or cloud_backend=..."
            )

    def _rounds(
        self,
        prompt: Prompt,
        cfg: GenerationConfig,
        spec: MethodSpec,
        answer: Answer,
        seed: int,
        gens: list[torch.Generator],
    ) -> Iterator[RoundEvent]:
        """A device-side method: the rounds of a cloud-verified one, or device-only."""
        public = prompt.public
        if self.egress is not None:
            public = self.egress.public_prompt(prompt.public)
        private_ids = self.device.encode_chat(prompt.private_dicts())
        public_ids = self.device.encode_chat([m.model_dump() for m in public])
        wire: WireFormat = TextWire(self.device) if self.wire == "text" else IdsWire(self.device)
        drafter = Drafter(
            self.device,
            (self._private, self._public),
            (private_ids, public_ids),
            wire,
            spec,
            cfg,
            seed,
        )
        link = None
        if spec.cloud == "verify":
            params = VerifyParams(
                lam=cfg.lam if spec.lam is None else spec.lam,
                top_k=cfg.top_k,
                greedy=cfg.greedy,
                temperature=cfg.temperature,
                repetition_penalty=cfg.repetition_penalty,
                no_repeat_ngram_size=cfg.no_repeat_ngram_size,
                target=spec.target,
                samples=0 if cfg.greedy or self.wire == "text" else spec.samples,
            )
            link = self._link(self._verifier(), public, wire.tokenizer, gens[1], params)
        guard = None
        if prompt.writing and spec.drafter == "private":
            if cfg.recover_refusals:
                yield from self._open(answer, private_ids, link)
            guard = self._guards(cfg, prompt, private_ids, drafter, answer)
        steering = Steering(beta=cfg.beta, greedy=cfg.greedy, top_p=cfg.top_p)
        with ThreadPoolExecutor(1, thread_name_prefix="specsteer-cloud") as pool:
            loop = RoundLoop(
                answer,
                drafter,
                link,
                spec,
                steering,
                gens[0],
                bonus_token=cfg.bonus_token,
                judged_bonus=cfg.judged_bonus,
                pool=pool if self._pipelined(cfg) else None,
                device_verdict=cfg.device_verdict,
                guard=guard,
            )
            events: Iterator[RoundEvent] = loop.run()
            if cfg.sign_texts and prompt.closing and spec.drafter == "private":
                device = self.device
                events = with_sign_off(events, answer, prompt.closing, device.encode, device.decode)
            yield from events

    def _guards(
        self,
        cfg: GenerationConfig,
        prompt: Prompt,
        private_ids: list[int],
        drafter: Drafter,
        answer: Answer,
    ) -> TextGuards | None:
        """The watches over a text written as the user: no refusal in its opening and no "as
        an AI" in it (``recover_refusals``) and, for a text to a person, the user's things
        (``keep_owner``, :func:`~specsteer._perspective.owner_guard`), and the end before it
        reads out another of the user's notes (``end_recitals``); ``None`` when none applies."""
        decode, eos = self.device.decode, self.device.eos_token_ids
        guards: list[TextGuard] = []
        if cfg.recover_refusals:
            guards.append(RefusalGuard(self._private, decode, private_ids, eos))
            guards.append(ai_guard(drafter.greedy, decode, eos))
        if cfg.keep_owner and prompt.owned:
            guards.append(owner_guard(drafter.greedy, decode, eos, prompt.owned))
        if cfg.end_recitals and prompt.notes:
            guards.append(RecitalGuard(drafter.greedy, decode, eos, prompt.notes, answer.may_end))
        return TextGuards(*guards) if guards else None

    def _open(
        self, answer: Answer, private_ids: list[int], link: CloudLink | None
    ) -> Iterator[RoundEvent]:
        """Start the answer with the device's opening when its own declines the request
        (:func:`~specsteer._opening.opening_without_refusal`); the cloud's view of it is
        screened like a draft's."""
        t0 = time.perf_counter()
        device = self.device
        ids = opening_without_refusal(
            self._private, device.decode, private_ids, device.eos_token_ids
        )
        yield DeviceWork(time.perf_counter() - t0)
        if not ids:
            return
        public = link.screen_ids(answer.public, ids) if link is not None else None
        taken = answer.take(ids) if public is None else answer.take_local(ids, public)
        yield Tokens(taken, "device", kept=None if public is None else "guard")

    def _link(
        self,
        cloud: CloudVerifier,
        public: tuple[ChatMessage, ...],
        tokenizer: str | None,
        seeds: torch.Generator,
        params: VerifyParams,
    ) -> CloudLink:
        return CloudLink(
            cloud,
            self.egress,
            prompt=public,
            params=params,
            model=self.model,
            tokenizer=tokenizer,
            vocab_size=self.device.vocab_size,
            decode=self.device.decode,
            encode=self.device.encode,
            seeds=seeds,
        )

    def _pipelined(self, cfg: GenerationConfig) -> bool:
        """Whether the device drafts ahead while the cloud verifies (``cfg.pipeline``; by
        default when the cloud computes elsewhere)."""
        if cfg.pipeline is not None:
            return cfg.pipeline
        return self.cloud is not None and not self.cloud.computes_here

    def _verifier(self) -> CloudVerifier:
        assert self.cloud is not None
        return self.cloud if self.send is None else _Hooked(self.cloud, self.send)

    def _cloud_only(
        self,
        prompt: Prompt,
        cfg: GenerationConfig,
        answer: Answer,
        reader: ModelBackend,
        gen: torch.Generator,
    ) -> Iterator[RoundEvent]:
        """The cloud model answers alone: one generate request through the seam (and the
        egress), sampled as the engine samples, with ``gen``'s seed. Token ids come back in the
        vocabulary of ``reader``, the model that decodes the result."""
        cloud = self.cloud
        if cloud is None or not cloud.can_generate:
            assert self.cloud_backend is not None
            cloud = InProcessVerifier(self.cloud_backend)
        public = prompt.public if self.egress is None else self.egress.public_prompt(prompt.public)
        request = GenerateRequest(
            request_id=request_id(),
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
        link = self._link(cloud, public, None, torch.Generator(), VerifyParams())
        outcome = link.generate(request, reader.vocab_size)
        yield outcome.exchange
        if isinstance(outcome, Failed):
            yield Fallback(outcome.reason)
            return
        eos = reader.eos_token_ids
        ids = outcome.response.token_ids
        if ids is None:  # another vocabulary: the reader's tokens of the text
            end = [min(eos)] if outcome.response.finish_reason == "eos" and eos else []
            ids = reader.encode(outcome.response.text) + end
        got = answer.take(list(ids))
        if got:
            yield Tokens(got, "cloud")

    def _reader(self, event: Tokens) -> ModelBackend:
        """The model whose vocabulary ``event``'s ids are in."""
        if event.kind == "cloud" and self.cloud_backend is not None:
            return self.cloud_backend
        return self.device

    def _result(
        self, answer: Answer, stats: GenerationStats, model: ModelBackend
    ) -> GenerationResult:
        eos = model.eos_token_ids
        finish: Literal["eos", "length"] = (
            "eos" if answer.tokens and answer.tokens[-1] in eos else "length"
        )
        text = model.decode([t for t in answer.tokens if t not in eos]).strip()
        if self.egress is not None:
            text = self.egress.restore(text)
            self.egress.answered(text, model.decode([t for t in answer.public if t not in eos]))
        return GenerationResult(
            text=text,
            token_ids=tuple(answer.tokens),
            finish_reason=finish,
            stats=stats,
            privacy=self.egress.report() if self.egress is not None else None,
        )
