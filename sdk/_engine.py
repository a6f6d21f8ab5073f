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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from specsteer import fusion
from specsteer._config import GenerationConfig
from specsteer._egress import PrivateEgress
from specsteer._errors import (
    CloudError,
    ConfigurationError,
    InvalidInputError,
    PrivacyViolation,
    ProtocolError,
)
from specsteer._result import GenerationResult, GenerationStats, RoundStat
from specsteer.backends._base import KVStream, ModelBackend
from specsteer.cloud_adapter import (
    ChatMessage,
    CloudVerifier,
    InProcessVerifier,
    Text,
    TokenIds,
    VerifyParams,
    VerifyRequest,
    VerifyResponse,
    check_response,
)

__all__ = ["DEFAULT_SYSTEM_PROMPT", "Decoder", "Prompt", "Wire", "build_prompt"]

logger = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = "You are a helpful personal assistant. Answer briefly."

#: The line that introduces the private context in the device's system message.
PRIVATE_INTRO = "What you know about the user:"

#: How drafts travel: token ids (shared tokenizer) or text (cross-vocabulary mode).
Wire = Literal["auto", "ids", "text"]

#: The replacement character a decoder emits for an incomplete UTF-8 sequence.
_PARTIAL = "\ufffd"

#: Extra tokens a text-mode draft may take to complete a character split over several tokens.
_MAX_COMPLETION = 8


@dataclass(frozen=True)
class _TextDraft:
    """A draft cut into units for the wire: each unit is a run of device tokens ending on a
    complete character."""

    tokens: list[int]  # the draft tokens that travel (a trailing incomplete run is dropped)
    counts: list[int]  # device tokens per unit, the end-of-answer unit included
    prefix: Text  # the accepted text before the draft
    span: Text


#: Hook that carries a request out of the device and returns the cloud's answer.
SendHook = Callable[[VerifyRequest, CloudVerifier], VerifyResponse]


@dataclass(frozen=True)
class Prompt:
    """The two views of one request.

    ``public`` is what the cloud may see (system prompt and chat, no private context);
    ``private`` is the same conversation with the private context in the system message.
    """

    public: tuple[ChatMessage, ...]
    private: tuple[ChatMessage, ...]
    context: str = ""

    def public_dicts(self) -> list[dict[str, str]]:
        """The public messages as plain dicts."""
        return [{"role": m.role, "content": m.content} for m in self.public]

    def private_dicts(self) -> list[dict[str, str]]:
        """The private messages as plain dicts."""
        return [{"role": m.role, "content": m.content} for m in self.private]


def build_prompt(
    query: str | Sequence[Mapping[str, str]],
    context: str = "",
    *,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
) -> Prompt:
    """Build the public and private views of a request.

    Args:
        query: the user's request, or a whole chat (``[{"role": ..., "content": ...}]``).
        context: the private context block (from the memory store); only the device sees it.
        system_prompt: instructions shared by both views.

    Raises:
        InvalidInputError: empty query or malformed messages.
    """
    if isinstance(query, str):
        if not query.strip():
            raise InvalidInputError("the query is empty; pass the user's request as text")
        chat = [ChatMessage(role="user", content=query)]
    else:
        try:
            chat = [ChatMessage(role=m["role"], content=m["content"]) for m in query]  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInputError(
                "messages must be dicts with 'role' ('system', 'user' or 'assistant') and "
                f"'content': {e}"
            ) from e
        if not chat or chat[-1].role != "user":
            raise InvalidInputError("a chat must end with a 'user' message")
    system = system_prompt
    if chat[0].role == "system":
        system, chat = chat[0].content, chat[1:]
    private_system = system
    if context.strip():
        private_system = f"{system}\n\n{PRIVATE_INTRO}\n{context.strip()}"
    public = (ChatMessage(role="system", content=system), *chat)
    private = (ChatMessage(role="system", content=private_system), *chat)
    return Prompt(public=tuple(public), private=tuple(private), context=context)


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


class Decoder:
    """Runs one generation with a device model and a cloud verifier.

    Args:
        device: the small model on the device.
        cloud: the cloud verifier (``InProcessVerifier`` for the embedded default).
        cloud_backend: the cloud model itself, needed only for ``method='cloud_only'``; taken from
            an ``InProcessVerifier`` when not given.
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
        if cfg.method == "cloud_only" and self.cloud_backend is None:
            raise ConfigurationError(
                "method 'cloud_only' needs the cloud model in this process "
                "(an InProcessVerifier, or cloud_backend=...)"
            )
        seed = cfg.seed if cfg.seed is not None else secrets.randbits(62)
        gens = [torch.Generator().manual_seed(seed + i) for i in range(3)]
        run = _Run(config=cfg)
        t0 = time.perf_counter()
        emit = on_tokens or (lambda _ids: None)
        if cfg.method == "cloud_only":
            self._cloud_only(prompt, run, gens[0], emit)
        else:
            self._loop(prompt, run, gens, emit)
        wall = time.perf_counter() - t0
        return self._result(run, wall, self.cloud_backend if cfg.method == "cloud_only" else None)

    # -- the loop --------------------------------------------------------------------------------

    def _loop(
        self,
        prompt: Prompt,
        run: _Run,
        gens: list[torch.Generator],
        emit: Callable[[list[int]], None],
    ) -> None:
        cfg = run.config
        draft_gen, recover_gen, seed_gen = gens
        private_ids = self.device.encode_chat(prompt.private_dicts())
        public_msgs = prompt.public
        if self.egress is not None:
            public_msgs = self.egress.public_prompt(prompt.public)
        public_ids = self.device.encode_chat([m.model_dump() for m in public_msgs])
        eos = self.device.eos_token_ids
        method = cfg.method
        while not run.finished and len(run.out) < cfg.max_new_tokens:
            remaining = cfg.max_new_tokens - len(run.out)
            if method == "device_only" or run.fallback is not None:
                t = time.perf_counter()
                lp = self._row(self._private, private_ids, run.out, cfg)
                tok = fusion.draft_token(_no_eos(lp, eos, cfg), cfg.greedy, draft_gen, cfg.top_p)
                run.device_s += time.perf_counter() - t
                self._append(run, [tok], eos, emit)
                continue

            # Draft (device). SpecSteer drafts with the private context; standard speculative
            # decoding drafts with the public view; token fusion drafts nothing.
            t = time.perf_counter()
            k = 0 if method == "token_fusion" else min(cfg.draft_tokens, remaining)
            drafter = self._public if method == "speculative" else self._private
            # Both draft from the user's own answer: the cloud's view of it may hold placeholders
            # for spans kept on the device, and those must never be fed to a drafter.
            drafter_prompt = public_ids if method == "speculative" else private_ids
            text_mode = self.wire == "text"
            incomplete = None
            if text_mode:

                def incomplete(d: list[int], pub_out: list[int] = run.pub_out) -> bool:
                    return self._wire_text(pub_out + d).endswith(_PARTIAL)

            draft, lp_draft_rows = self._draft(
                drafter, drafter_prompt, run.out, k, run, draft_gen, eos, incomplete
            )
            tdraft: _TextDraft | None = None
            if text_mode:
                tdraft = self._text_draft(run.pub_out, draft, eos)
                draft = tdraft.tokens
                lp_draft_rows = lp_draft_rows[: len(draft)]
            if draft and self._keep_local(run, draft, eos, emit):
                run.device_s += time.perf_counter() - t
                continue
            ctxfree_rows: torch.Tensor | None = None
            ctxfree_lp: list[float] | None = None
            if method == "speculative":
                ctxfree_lp = _gather(lp_draft_rows, draft)
            elif cfg.ctxfree_source == "device" and draft:
                # One block pass over the public view scores every draft token and the bonus row.
                rows = self._public.logits(public_ids + run.pub_out, draft)  # [k+1, V]
                ctxfree_rows = fusion.processed_log_probs(rows, run.pub_out, cfg.processing, draft)
                ctxfree_lp = _gather(ctxfree_rows[:-1], draft)
            run.device_s += time.perf_counter() - t

            # Verify (cloud).
            prefix_span: TokenIds | Text = TokenIds(ids=run.pub_out)
            draft_span: TokenIds | Text = TokenIds(ids=draft)
            if tdraft is not None:
                prefix_span = tdraft.prefix
                draft_span = tdraft.span
                if ctxfree_lp is not None:
                    ctxfree_lp = _sum_units(ctxfree_lp, tdraft.counts)
            request = VerifyRequest(
                request_id=_request_id(),
                model=self.model,
                prompt=list(public_msgs),
                prefix=prefix_span,
                draft=draft_span,
                tokenizer=self._fingerprint if tdraft is None else None,
                ctxfree_logprobs=ctxfree_lp if ctxfree_lp is not None else None,
                params=VerifyParams(
                    lam=1.0 if method == "speculative" else cfg.lam,
                    top_k=cfg.top_k,
                    greedy=cfg.greedy,
                    temperature=cfg.temperature,
                    repetition_penalty=cfg.repetition_penalty,
                    no_repeat_ngram_size=cfg.no_repeat_ngram_size,
                    seed=int(torch.randint(0, 2**62, (1,), generator=seed_gen).item()),
                    target="llm" if method == "speculative" else "fused",
                ),
            )
            response = self._exchange(request, run)
            if response is None:
                if run.fallback is None:  # the guard refused the payload: keep the round local
                    self._keep_local(run, draft, eos, emit, force=True)
                continue  # or the cloud failed: device-only from here on
            n = response.n_accepted
            if tdraft is not None:  # units -> device tokens
                n = sum(tdraft.counts[:n])

            # Recover (device).
            t = time.perf_counter()
            accepted = draft[:n]
            new = list(accepted)
            ends_with_eos = bool(accepted) and accepted[-1] in eos
            all_passed = n == len(draft) and len(draft) > 0
            recovered = not ends_with_eos and (not all_passed or cfg.bonus_token)
            if recovered and response.top_k.strings is not None:
                if method == "speculative":
                    rows_needed: tuple[torch.Tensor | None, ...] = (
                        None
                        if all_passed
                        else (
                            lp_draft_rows[n]
                            if n < len(draft)
                            else self._row(self._public, public_ids, run.out + draft, cfg)
                        ),
                        None,
                    )
                else:
                    rows_needed = (
                        lp_draft_rows[n]
                        if n < len(draft)
                        else self._row(self._private, private_ids, run.out + draft, cfg),
                        ctxfree_rows[n]
                        if ctxfree_rows is not None
                        else self._row(self._public, public_ids, run.pub_out + accepted, cfg),
                    )
                try:
                    new.extend(
                        self._recover_text(
                            response.top_k.strings,
                            response.top_k.logprobs,
                            rows_needed[0],
                            rows_needed[1],
                            method,
                            cfg,
                            recover_gen,
                        )
                    )
                except ProtocolError as e:  # no candidate the device can write: keep the
                    # accepted tokens and go on without the cloud
                    run.fallback = f"{type(e).__name__}: {e}"
                    logger.warning("cloud candidates unusable; continuing on the device: %s", e)
                    recovered = False
            elif recovered:
                topk_ids = torch.tensor(response.top_k.ids or [], dtype=torch.long)
                topk_lp = torch.tensor(response.top_k.logprobs, dtype=torch.float64)
                if method == "speculative":
                    lp0 = (
                        lp_draft_rows[n]
                        if n < len(draft)
                        else self._row(self._public, public_ids, run.out + draft, cfg)
                    )
                    if all_passed:  # bonus token: plain target distribution on the support
                        tok = fusion.recover_residual(
                            topk_ids,
                            topk_lp,
                            torch.full_like(lp0, -torch.inf),
                            cfg.greedy,
                            recover_gen,
                        )
                    else:
                        tok = fusion.recover_residual(
                            topk_ids, topk_lp, lp0, cfg.greedy, recover_gen
                        )
                else:
                    lp_s = (
                        lp_draft_rows[n]
                        if n < len(draft)
                        else self._row(self._private, private_ids, run.out + draft, cfg)
                    )
                    if ctxfree_rows is not None:
                        lp_s0 = ctxfree_rows[n]
                    else:
                        lp_s0 = self._row(self._public, public_ids, run.pub_out + accepted, cfg)
                    tok = fusion.recover(
                        topk_ids, topk_lp, lp_s, lp_s0, cfg.beta, cfg.greedy, recover_gen, cfg.top_p
                    )
                new.append(tok)
            run.device_s += time.perf_counter() - t
            run.rounds.append(RoundStat(drafted=len(draft), accepted=n, recovered=recovered))
            self._append(run, new, eos, emit)

    def _draft(
        self,
        stream: KVStream,
        prompt_ids: list[int],
        answer: list[int],
        k: int,
        run: _Run,
        gen: torch.Generator,
        eos: frozenset[int],
        incomplete: Callable[[list[int]], bool] | None = None,
    ) -> tuple[list[int], torch.Tensor]:
        """Draft up to ``k`` tokens; returns them and their ``[len, V]`` log-prob rows.

        With ``incomplete`` (text mode), drafting goes on for a few tokens past ``k`` while the
        draft ends inside a character, so that it carries at least one whole unit.
        """
        draft: list[int] = []
        rows: list[torch.Tensor] = []
        room = run.config.max_new_tokens - len(run.out)
        limit = k
        cfg = run.config
        # Standard speculative decoding's correction assumes drafts from the whole distribution.
        top_p = 1.0 if cfg.method == "speculative" else cfg.top_p
        while len(draft) < limit:
            lp = self._row(stream, prompt_ids, answer + draft, cfg)
            tok = fusion.draft_token(_no_eos(lp, eos, cfg), cfg.greedy, gen, top_p)
            rows.append(lp)
            draft.append(tok)
            if tok in eos:
                break
            if (
                len(draft) == limit
                and incomplete is not None
                and limit < min(k + _MAX_COMPLETION, room)
                and incomplete(draft)
            ):
                limit += 1
        stacked = torch.stack(rows) if rows else torch.zeros(0, self.device.vocab_size)
        return draft, stacked

    def _wire_text(self, ids: list[int]) -> str:
        """The device's text of ``ids`` as it travels: special tokens written out."""
        return self.device.decode(ids, skip_special_tokens=False)

    def _text_draft(self, pub_out: list[int], draft: list[int], eos: frozenset[int]) -> _TextDraft:
        """Cut ``draft`` into units that end on complete characters (text mode)."""
        end = bool(draft) and draft[-1] in eos
        body = draft[:-1] if end else draft
        prefix = self._wire_text(pub_out)
        last = prefix
        offsets: list[int] = []
        counts: list[int] = []
        pending = 0
        for i in range(len(body)):
            pending += 1
            text = self._wire_text(pub_out + body[: i + 1])
            if len(text) > len(last) and text.startswith(last) and not text.endswith(_PARTIAL):
                offsets.append(len(text) - len(prefix))
                counts.append(pending)
                pending, last = 0, text
        if pending:  # the draft ends inside a character: those tokens wait for the next round
            body, end = body[: len(body) - pending], False
        if end:
            counts.append(1)
        tokens = [*body, draft[-1]] if end else body
        return _TextDraft(
            tokens=tokens,
            counts=counts,
            prefix=Text(text=prefix),
            span=Text(text=last[len(prefix) :], offsets=offsets, eos=end),
        )

    def _recover_text(
        self,
        strings: list[str],
        lp_llm: list[float],
        row: torch.Tensor | None,
        ctxfree_row: torch.Tensor | None,
        method: str,
        cfg: GenerationConfig,
        gen: torch.Generator,
    ) -> list[int]:
        """Pick one of the cloud's candidate strings; returns its device tokens.

        Each string is scored on the device by its first device token (``""`` is the end of the
        answer); strings the device tokenizer renders as nothing are dropped.

        Args:
            row: ``[V]`` the device's log-probabilities at the position: with the private
                context (SpecSteer, token fusion), or the drafter's (speculative; ``None`` for the
                bonus token, drawn from the cloud's distribution alone).
            ctxfree_row: ``[V]`` the context-free log-probabilities (steered methods).
        """
        toks: list[list[int]] = []
        keep: list[int] = []
        for i, text in enumerate(strings):
            ids = [self.device.end_token_id] if text == "" else self.device.encode(text)
            if ids:
                toks.append(ids)
                keep.append(i)
        if not toks:
            raise ProtocolError("none of the cloud's candidates is text the device can write")
        first = torch.tensor([ids[0] for ids in toks], dtype=torch.long)
        lp_l = torch.tensor([lp_llm[i] for i in keep], dtype=torch.float64)
        if method == "speculative":
            lp0 = torch.full((len(toks),), -torch.inf) if row is None else row[first]
            choice = fusion.recover_residual_index(lp_l, lp0, cfg.greedy, gen)
        else:
            assert row is not None and ctxfree_row is not None
            choice = fusion.recover_index(
                lp_l, row[first], ctxfree_row[first], cfg.beta, cfg.greedy, gen, cfg.top_p
            )
        return toks[choice]

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
        prefix_text = self.device.decode(run.pub_out)
        draft_text = self.device.decode(run.pub_out + draft)[len(prefix_text) :]
        public = self.egress.screen_draft(prefix_text, draft_text)
        if public is None:
            if not force:
                return False
            public = self.egress.guard.screen_text(prefix_text + draft_text).safe_text
        before = len(run.out)
        self._append(run, list(draft), eos, emit)
        run.pub_out = self.device.encode(public)
        run.local_rounds += 1
        run.rounds.append(
            RoundStat(
                drafted=len(draft), accepted=len(run.out) - before, recovered=False, local=True
            )
        )
        return True

    def _row(
        self, stream: KVStream, prompt_ids: list[int], answer: list[int], cfg: GenerationConfig
    ) -> torch.Tensor:
        """``[V]`` processed log-probabilities of the token after ``prompt_ids + answer``."""
        logits = stream.logits(prompt_ids + answer)[0]
        return fusion.processed_log_probs(logits, answer, cfg.processing)

    def _exchange(self, request: VerifyRequest, run: _Run) -> VerifyResponse | None:
        """Send one request; on a cloud failure switch the run to device-only and say why."""
        assert self.cloud is not None
        t = time.perf_counter()
        run.cloud_calls += 1
        run.bytes_sent += len(request.model_dump_json().encode())
        try:
            if self.egress is not None:
                response = self.egress.send(request, self.cloud)
            elif self.send is not None:
                response = self.send(request, self.cloud)
            else:
                response = self.cloud.verify(request)
            check_response(request, response, self.device.vocab_size)
        except PrivacyViolation as e:
            run.cloud_s += time.perf_counter() - t
            run.cloud_calls -= 1
            run.bytes_sent -= len(request.model_dump_json().encode())
            logger.info("the egress guard kept a round on the device: %s", type(e).__name__)
            return None
        except CloudError as e:
            run.cloud_s += time.perf_counter() - t
            run.fallback = f"{type(e).__name__}: {e}"
            logger.warning("cloud verification failed; continuing on the device only: %s", e)
            return None
        run.cloud_s += time.perf_counter() - t
        run.bytes_received += len(response.model_dump_json().encode())
        return response

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
        llm = self.cloud_backend
        assert llm is not None
        cfg = run.config
        t = time.perf_counter()
        ids = llm.encode_chat(prompt.public_dicts())
        stream = llm.stream()
        eos = llm.eos_token_ids
        while not run.finished and len(run.out) < cfg.max_new_tokens:
            lp = self._row(stream, ids, run.out, cfg)
            tok = fusion.draft_token(_no_eos(lp, eos, cfg), cfg.greedy, gen, cfg.top_p)
            self._append(run, [tok], eos, emit)
        run.cloud_s += time.perf_counter() - t
        run.cloud_calls = 1

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


def _no_eos(lp: torch.Tensor, eos: frozenset[int], cfg: GenerationConfig) -> torch.Tensor:
    """``lp`` with the end tokens ruled out when the run ignores them."""
    if not cfg.ignore_eos or not eos:
        return lp
    out = lp.clone()
    out[torch.tensor(sorted(eos), dtype=torch.long)] = -torch.inf
    return out


#: Hex digits to letters: an id with no digit runs, so no detector can read it as a number.
_HEX_TO_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")


def _request_id() -> str:
    """A random request id of 32 letters (128 bits), with no digit a card or phone detector
    could take for private data (a hex uuid holds a Luhn-valid 13-19 digit run about 0.2% of the
    time, and the guard would then refuse the whole payload)."""
    return secrets.token_hex(16).translate(_HEX_TO_LETTERS)


def _sum_units(values: list[float], counts: list[int]) -> list[float]:
    """Sum per-token values into per-unit values."""
    out: list[float] = []
    i = 0
    for c in counts:
        out.append(min(0.0, sum(values[i : i + c])))
        i += c
    return out


def _gather(rows: torch.Tensor, ids: list[int]) -> list[float]:
    """``rows[i, ids[i]]`` as plain floats (clamped to <= 0 for the wire)."""
    if not ids:
        return []
    vals = rows[torch.arange(len(ids)), torch.tensor(ids, dtype=torch.long)]  # [K]
    return [min(0.0, float(v)) for v in vals.tolist()]
