"""How the engine talks through the privacy layer's egress guard.

``PrivateEgress`` is the engine's one way out: the public prompt is screened (pseudonymized
placeholders, blocked spans), each draft is screened together with the public prefix before it is
offered to the cloud, and every request -- a draft to verify, or (``cloud_only``) a prompt to
answer -- is admitted by :meth:`EgressGuard.admit`, which takes the adapter's wire bytes
(``CloudVerifier.encode`` / ``encode_generate``: protocol JSON, or a vLLM completions body), scans
them and writes them to the audit log; only then does the engine hand those same bytes to the
adapter (``CloudVerifier.transmit`` / ``transmit_generate``).

It is also where a user sets the policy: ``Assistant(..., privacy=PrivateEgress(
policy=EgressPolicy(...), audit_log=AuditLog(path)))``.

When a draft would carry a blocked span (private text from the user's memories, a card number,
...), the round stays on the device: the engine keeps its own draft tokens for the user and the
cloud's view of the accepted text gets a placeholder instead.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from specsteer._answer_views import AnswerViews
from specsteer._errors import ConfigurationError
from specsteer.cloud_adapter import ChatMessage, CloudVerifier, GenerateRequest, VerifyRequest
from specsteer.privacy import (
    Admitted,
    AuditLog,
    ContextLift,
    EgressGuard,
    EgressPolicy,
    PrivacyReport,
)

__all__ = ["Payload", "PrivateEgress"]

#: What may leave the device.
Payload = VerifyRequest | GenerateRequest

logger = logging.getLogger(__name__)


class PrivateEgress:
    """The engine's door to the cloud, backed by an :class:`EgressGuard`.

    Pass either a ready ``guard`` or the parts to build one (``policy``, ``audit_log``), not
    both.

    Args:
        guard: the egress guard, configured by the caller.
        policy: actions per detector; default :class:`EgressPolicy`.
        audit_log: where payloads are recorded; default the log under ``$SPECSTEER_HOME``.
        decode_ids: turns device token ids into text so token-id payloads are scanned too;
            the :class:`Decoder` this door is given to sets it when it is not given here.

    Raises:
        ConfigurationError: ``guard`` together with ``policy``, ``audit_log`` or ``decode_ids``
            (they would be ignored).

    Example:
        >>> from specsteer.privacy import DEFAULT_ACTIONS, EgressPolicy
        >>> policy = EgressPolicy(actions={**DEFAULT_ACTIONS, "EMAIL_ADDRESS": "block"})
        >>> door = PrivateEgress(policy=policy)
        >>> door.guard.policy.action_for("EMAIL_ADDRESS")
        'block'
    """

    def __init__(
        self,
        guard: EgressGuard | None = None,
        *,
        policy: EgressPolicy | None = None,
        audit_log: AuditLog | None = None,
        decode_ids: Callable[[Sequence[int]], str] | None = None,
    ) -> None:
        if guard is not None and (policy, audit_log, decode_ids) != (None, None, None):
            raise ConfigurationError(
                "pass either guard=... or policy/audit_log/decode_ids to build one, not both; "
                "a ready guard carries its own policy, audit log and id decoder"
            )
        self._decode = decode_ids
        if guard is None:
            guard = EgressGuard(
                policy,
                audit_log,
                allowed_types=(VerifyRequest, GenerateRequest),
                decode_ids=self._decode_ids,
            )
        self.guard = guard
        self._answers = AnswerViews(guard.conceal)

    def use_device(self, decode_ids: Callable[[Sequence[int]], str]) -> None:
        """Decode token ids with the device tokenizer unless a decoder was given already."""
        if self._decode is None:
            self._decode = decode_ids

    def _decode_ids(self, ids: Sequence[int]) -> str:
        if self._decode is None:
            raise ConfigurationError(
                "this PrivateEgress cannot read token ids; pass decode_ids=device.decode, or "
                "give it to a Decoder or Assistant, which sets it"
            )
        return self._decode(ids)

    # -- per generation ----------------------------------------------------------------------------

    def begin(self, private_texts: Iterable[str], names: Iterable[str] = ()) -> None:
        """Start a generation: the texts that must not leave, and names to pseudonymize."""
        self.guard.set_private_texts([t for t in private_texts if t.strip()])
        names = [n for n in names if n.strip()]
        if names:
            self.guard.register_names(names)
        self.guard.reset_report()

    def report(self) -> PrivacyReport:
        """What left the device since :meth:`begin`."""
        return self.guard.report

    # -- the engine's calls ------------------------------------------------------------------------

    def public_prompt(self, messages: Sequence[ChatMessage]) -> tuple[ChatMessage, ...]:
        """The prompt as the cloud may see it: every message screened, placeholders in; an
        earlier answer of a chat as the cloud saw it (:meth:`answered`)."""
        out = []
        for m in messages:
            content = self._answers.public(m.content) if m.role == "assistant" else m.content
            screened = self.guard.screen_text(content)
            out.append(ChatMessage(role=m.role, content=screened.safe_text))
        return tuple(out)

    def answered(self, text: str, public: str) -> None:
        """Remember that the user got ``text`` for an answer the cloud saw as ``public``: a
        later turn of the chat that quotes it as the assistant's goes out as ``public``."""
        self._answers.answered(text, public)

    def screen_draft(self, public_prefix: str, draft: str, *, force: bool = False) -> str | None:
        """Screen ``public_prefix + draft`` before the draft is offered to the cloud.

        Returns:
            ``None`` when the draft may be sent as it is; otherwise the public text that replaces
            ``public_prefix + draft`` (placeholders where the private spans were), and the round
            must stay on the device. With ``force`` the public text is returned in every case
            (the round stays on the device for another reason).
        """
        screened = self.guard.screen_text(public_prefix + draft)
        if force:
            return screened.safe_text
        if screened.clean:
            return None
        if not any(
            f.span.end > len(public_prefix) for f in screened.findings if f.action != "allow"
        ):
            return None
        return screened.safe_text

    def admit(
        self, request: Payload, cloud: CloudVerifier, note: Mapping[str, Any] | None = None
    ) -> Admitted:
        """Scan and audit the bytes ``cloud`` would send for ``request``; return them.

        The guard scans and records ``cloud.encode(request)`` (or ``encode_generate`` for a
        generate request) -- the adapter's own wire bytes. Send exactly
        :attr:`~specsteer.privacy.Admitted.data` with ``cloud.transmit`` (``transmit_generate``),
        then report the answer with :meth:`delivered`. ``note`` goes into the audit record.

        Raises:
            PrivacyViolation: the payload still carried private text; nothing may be sent.
            ProtocolError: the adapter cannot carry this request; nothing was recorded.
            ConfigurationError: this cloud cannot generate; nothing was recorded.
        """
        encode = cloud.encode_generate if isinstance(request, GenerateRequest) else cloud.encode
        return self.guard.admit(request, cloud.destination, encode=encode, note=note)

    def sending(self) -> contextlib.AbstractContextManager[None]:
        """Hold while one payload is admitted, sent and delivered (see
        :meth:`EgressGuard.sending`)."""
        return self.guard.sending()

    def delivered(
        self, admitted: Admitted, received: int, receipt: Mapping[str, Any] | None = None
    ) -> None:
        """Count an admitted payload as sent and the ``received`` bytes of its answer; keep the
        server's ``receipt`` for it beside its audit record."""
        self.guard.delivered(admitted, received, receipt)

    @property
    def lift(self) -> ContextLift:
        """This generation's context-lift policy (the policy's ``max_context_lift`` and
        ``context_lift_budget``): which draft tokens may leave, and what left."""
        return self.guard.lift

    def conceal(self, text: str) -> str:
        """The placeholder the cloud sees instead of ``text``, kept on the device for its lift."""
        self._answers.kept(text)
        return self.guard.conceal(text)

    def restore(self, text: str) -> str:
        """Put pseudonymized values back before the user sees ``text``."""
        return self.guard.restore(text)
