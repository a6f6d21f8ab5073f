"""How the engine talks through the privacy layer's egress guard.

``PrivateEgress`` is the engine's one way out: the public prompt is screened (pseudonymized
placeholders, blocked spans), each draft is screened together with the public prefix before it is
offered to the cloud, and every request goes through :meth:`EgressGuard.send`, which scans the
exact bytes, writes the audit record, and only then hands them to the verifier.

When a draft would carry a blocked span (private text from the user's memories, a card number,
...), the round stays on the device: the engine keeps its own draft tokens for the user and the
cloud's view of the accepted text gets a placeholder instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from specsteer.cloud_adapter import ChatMessage, CloudVerifier, VerifyRequest, VerifyResponse
from specsteer.privacy import AuditLog, EgressGuard, EgressPolicy, PrivacyReport

__all__ = ["PrivateEgress"]

logger = logging.getLogger(__name__)


class PrivateEgress:
    """The engine's door to the cloud, backed by an :class:`EgressGuard`.

    Args:
        guard: the egress guard; built with ``policy`` and ``audit_log`` when not given.
        policy: actions per detector (used only when ``guard`` is None).
        audit_log: where payloads are recorded (used only when ``guard`` is None).
        decode_ids: turns device token ids into text so token-id payloads are scanned too.
    """

    def __init__(
        self,
        guard: EgressGuard | None = None,
        *,
        policy: EgressPolicy | None = None,
        audit_log: AuditLog | None = None,
        decode_ids: object | None = None,
    ) -> None:
        if guard is None:
            guard = EgressGuard(
                policy,
                audit_log,
                allowed_types=(VerifyRequest,),
                decode_ids=decode_ids,  # type: ignore[arg-type]
            )
        self.guard = guard

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
        """The prompt as the cloud may see it: every message screened, placeholders in."""
        out = []
        for m in messages:
            screened = self.guard.screen_text(m.content)
            out.append(ChatMessage(role=m.role, content=screened.safe_text))
        return tuple(out)

    def screen_draft(self, public_prefix: str, draft: str) -> str | None:
        """Screen ``public_prefix + draft`` before the draft is offered to the cloud.

        Returns:
            ``None`` when the draft may be sent as it is; otherwise the public text that replaces
            ``public_prefix + draft`` (placeholders where the private spans were), and the round
            must stay on the device.
        """
        screened = self.guard.screen_text(public_prefix + draft)
        if screened.clean:
            return None
        if not any(
            f.span.end > len(public_prefix) for f in screened.findings if f.action != "allow"
        ):
            return None
        return screened.safe_text

    def send(self, request: VerifyRequest, cloud: CloudVerifier) -> VerifyResponse:
        """Carry ``request`` out through the guard (scan, audit, transmit) and parse the answer.

        Raises:
            PrivacyViolation: the payload still carried private text; nothing was sent.
            CloudError: the verifier failed.
        """

        def transmit(data: bytes) -> bytes:
            # The verifier receives exactly the bytes that were scanned and audited.
            response = cloud.verify(VerifyRequest.model_validate_json(data))
            return response.model_dump_json().encode()

        raw = self.guard.send(request, cloud.destination, transmit)
        return VerifyResponse.model_validate_json(raw)

    def restore(self, text: str) -> str:
        """Put pseudonymized values back before the user sees ``text``."""
        return self.guard.restore(text)
