"""The egress guard: the one door between the device and the network.

Two steps, one object:

1. Before building a payload, the engine calls :meth:`EgressGuard.screen_text` on every text
   it means to send (the query, the accepted prefix, the draft). It gets back the findings with
   their actions and a ``safe_text`` where blocked and pseudonymized spans are placeholders.
2. :meth:`EgressGuard.send` takes the finished payload — only an allowed protocol type —
   turns it into the exact bytes the transport will send (the adapter's ``encode``, default the
   payload's JSON), scans those bytes again, refuses the payload if a blocked or pseudonymized
   span is still there, writes and fsyncs the audit record of those bytes, and only then hands
   the same bytes to the transport.

The guard imports no adapter: the sdk passes ``allowed_types``, ``encode`` and ``transmit``.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from specsteer._errors import ConfigurationError, PrivacyViolation
from specsteer.privacy._audit import AuditLog
from specsteer.privacy._detectors import (
    Detector,
    NameDetector,
    Span,
    default_detectors,
    resolve_overlaps,
)
from specsteer.privacy._exceptions import AuditLogError, DisallowedPayloadError
from specsteer.privacy._lift import ContextLift
from specsteer.privacy._normalize import fold
from specsteer.privacy._overlap import OverlapIndex
from specsteer.privacy._policy import Action, EgressPolicy
from specsteer.privacy._pseudonymize import Pseudonymizer
from specsteer.privacy._report import PrivacyReport, ReportAccumulator

__all__ = ["Admitted", "EgressGuard", "Finding", "ScreenResult"]

_WORDS = re.compile(r"\w+")
# Request ids and vocabulary digests: hex written in the letters a-p, so no digit for a detector
# to read and no room for a word of user text. Anything else in those fields is scanned.
_GENERATED_ID = re.compile(r"[a-p]{16,128}")


@dataclass(frozen=True)
class Finding:
    """A span found in outbound text and what the policy does with it.

    Attributes:
        span: Where, and which entity.
        action: ``block``, ``pseudonymize`` or ``allow``.
        field: For payload scans, the JSON path of the field (``"<joined>"`` for a match that
            straddles fields); empty for :meth:`EgressGuard.screen_text`.
    """

    span: Span
    action: Action
    field: str = ""


@dataclass(frozen=True)
class Admitted:
    """A payload the guard let out: the exact bytes to send and their audit record.

    Attributes:
        data: The bytes that were scanned and recorded; send these and no others.
        seq: The audit record's sequence number.
        token_ids: Integers in the payload's token-id arrays.
        words: Words in its text fields.
    """

    data: bytes
    seq: int
    token_ids: int
    words: int


@dataclass(frozen=True)
class ScreenResult:
    """The result of screening one text.

    Attributes:
        text: The text as given (private: never send it unless ``clean``).
        safe_text: The text with every blocked or pseudonymized span replaced by a placeholder;
            this is what may be sent. :meth:`EgressGuard.restore` turns it back.
        findings: Every finding, sorted by position.
    """

    text: str
    safe_text: str
    findings: tuple[Finding, ...]

    @property
    def blocked(self) -> tuple[Span, ...]:
        """Spans that must stay on the device."""
        return tuple(f.span for f in self.findings if f.action == "block")

    @property
    def pseudonymized(self) -> tuple[Span, ...]:
        """Spans replaced by reversible placeholders."""
        return tuple(f.span for f in self.findings if f.action == "pseudonymize")

    @property
    def clean(self) -> bool:
        """True when the text may leave unchanged (nothing blocked or pseudonymized)."""
        return self.safe_text == self.text and not self.blocked and not self.pseudonymized


def _path_label(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += "[]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "$"


class EgressGuard:
    """Screens, audits and forwards every outbound payload.

    Args:
        policy: Actions per entity; default :class:`EgressPolicy`.
        audit_log: Where each payload is recorded before it leaves; default :class:`AuditLog`
            under the state root.
        allowed_types: The protocol types that may leave (e.g. ``(VerifyRequest,)``); matched
            exactly, so a subclass carrying extra fields is refused.
        detectors: PII detectors; default :func:`default_detectors`.
        names: Names to pseudonymize as ``PERSON`` (more via :meth:`register_names`).
        decode_ids: Turns token ids back into text, so payloads in token-id mode are scanned
            too. Without it, id arrays are counted but not scanned for private text.

    Raises:
        ConfigurationError: ``allowed_types`` is empty or holds a non-pydantic type.
    """

    def __init__(
        self,
        policy: EgressPolicy | None = None,
        audit_log: AuditLog | None = None,
        *,
        allowed_types: tuple[type[BaseModel], ...],
        detectors: Sequence[Detector] | None = None,
        names: Iterable[str] = (),
        decode_ids: Callable[[Sequence[int]], str] | None = None,
    ) -> None:
        if not allowed_types or not all(
            isinstance(t, type) and issubclass(t, BaseModel) for t in allowed_types
        ):
            raise ConfigurationError(
                "EgressGuard needs allowed_types: a non-empty tuple of pydantic protocol types, "
                "e.g. allowed_types=(VerifyRequest,)"
            )
        self.policy = policy if policy is not None else EgressPolicy()
        self.audit_log = audit_log if audit_log is not None else AuditLog()
        self._allowed = tuple(allowed_types)
        self._names = NameDetector(fold(n).text for n in names)
        self._detectors: tuple[Detector, ...] = (
            *(default_detectors() if detectors is None else detectors),
            self._names,
        )
        self._decode_ids = decode_ids
        self._index = OverlapIndex(
            self.policy.overlap_n,
            min_short=self.policy.overlap_min_short,
            min_token_chars=self.policy.overlap_min_token_chars,
            rare_words=self.policy.overlap_rare_words,
        )
        self.pseudonymizer = Pseudonymizer()
        self._report = ReportAccumulator()
        self._lock = threading.Lock()
        self.lift = self._new_lift()
        self._sending = threading.Lock()

    # -- session state ---------------------------------------------------------------------------

    def set_private_texts(self, texts: Iterable[str]) -> None:
        """Replace the private texts (retrieved context and the user's memories) for this session."""
        with self._lock:
            self._index.clear()
            self._index.add(texts)

    def register_names(self, names: Iterable[str]) -> None:
        """Pseudonymize these names (as ``PERSON``) from now on."""
        self._names.add(fold(n).text for n in names)

    def restore(self, text: str) -> str:
        """Put the values behind this session's placeholders back (on the device)."""
        return self.pseudonymizer.restore(text)

    def conceal(self, text: str) -> str:
        """The placeholder the cloud sees for ``text`` kept on the device by the context-lift
        policy (the same text always gets the same one; :meth:`restore` brings it back)."""
        return self.pseudonymizer.placeholder("PRIVATE_CONTEXT", text)

    def _new_lift(self) -> ContextLift:
        inf = float("inf")
        p = self.policy
        return ContextLift(
            inf if p.max_context_lift is None else p.max_context_lift,
            inf if p.context_lift_budget is None else p.context_lift_budget,
        )

    # -- scanning --------------------------------------------------------------------------------

    def _find(self, text: str) -> list[Finding]:
        # Detectors read the folded form (full-width "＠", non-breaking spaces, look-alike
        # letters, soft hyphens), and their spans are mapped back onto ``text``.
        folded = fold(text)
        spans = [
            Span(*folded.original(s.start, s.end), s.entity, s.score)
            for detector in self._detectors
            for s in detector.analyze(folded.text)
        ]
        spans.extend(self._index.find(text))
        return [Finding(s, self.policy.action_for(s.entity)) for s in resolve_overlaps(spans)]

    def screen_text(self, text: str) -> ScreenResult:
        """Find private text and PII in ``text`` and make the version that may be sent.

        Args:
            text: Text the engine intends to send (query, prefix, draft).

        Returns:
            A :class:`ScreenResult`; send its ``safe_text``. Blocked spans become placeholders
            such as ``[PRIVATE_TEXT_1]`` and stay on the device; :meth:`restore` brings them back.
        """
        findings = self._find(text)
        hidden = [f.span for f in findings if f.action != "allow"]
        safe = self.pseudonymizer.pseudonymize(text, hidden) if hidden else text
        self._report.fired(Counter(f.span.entity for f in findings))
        self._report.add(
            spans_kept_local=sum(f.action == "block" for f in findings),
            spans_pseudonymized=sum(f.action == "pseudonymize" for f in findings),
        )
        return ScreenResult(text, safe, tuple(findings))

    def _views(self, data: bytes) -> tuple[list[tuple[str, str]], set[str], int, int]:
        """Text views of a serialized payload: each string leaf, decoded id arrays, and all
        leaves joined (so a span split across fields, e.g. prefix and draft, is seen)."""
        doc = json.loads(data)
        views: list[tuple[str, str]] = []
        fields: set[str] = set()
        ids = words = 0
        generated = set(self.policy.generated_fields)

        def walk(node: Any, path: tuple[str | int, ...]) -> None:
            nonlocal ids, words
            if isinstance(node, dict):
                for k, v in node.items():
                    views.append((_path_label(path) + "{key}", str(k)))
                    walk(v, (*path, str(k)))
            elif isinstance(node, list):
                if node and all(isinstance(x, int) and not isinstance(x, bool) for x in node):
                    fields.add(_path_label(path))
                    if _path_label(path) in generated:
                        return  # offsets the protocol computed, not token ids
                    ids += len(node)
                    if self._decode_ids is not None:
                        views.append((_path_label(path), self._decode_ids(node)))
                    return
                for i, v in enumerate(node):
                    walk(v, (*path, i))
            elif isinstance(node, str):
                if _path_label(path) in generated and _GENERATED_ID.fullmatch(node):
                    fields.add(_path_label(path))  # an id the protocol generated: no user text
                elif node:
                    views.append((_path_label(path), node))
                    fields.add(_path_label(path))
                    words += len(_WORDS.findall(node))
            elif node is not None:
                fields.add(_path_label(path))

        walk(doc, ())
        leaves = [text for label, text in views if not label.endswith("{key}")]
        # Joined both ways: "" keeps a word split across fields whole (cross-vocabulary prefix
        # "hel" + draft "lo"), "\n" keeps words at field edges apart ("q" + "three ...").
        views.append(("<joined>", "".join(leaves)))
        views.append(("<joined>", "\n".join(leaves)))
        return views, fields, ids, words

    def _scan(self, data: bytes) -> tuple[list[Finding], set[str], int, int]:
        """Findings in serialized payload bytes (each with its field), the fields, the id count
        and the word count."""
        views, fields, ids, words = self._views(data)
        findings: list[Finding] = []
        for label, text in views:
            findings.extend(Finding(f.span, f.action, label) for f in self._find(text))
        return findings, fields, ids, words

    # -- the door --------------------------------------------------------------------------------

    def admit(
        self,
        payload: BaseModel,
        destination: str,
        *,
        encode: Callable[[Any], bytes] | None = None,
        note: Mapping[str, Any] | None = None,
    ) -> Admitted:
        """Encode, scan and audit ``payload``: the first half of :meth:`send`.

        The caller transmits :attr:`Admitted.data` -- those bytes and no others -- and then
        reports the answer with :meth:`delivered`, all inside :meth:`sending`. A payload type
        with a ``receipt_prev`` field is sent carrying the link to the last server receipt.

        Args:
            payload: An instance of one of ``allowed_types`` (exact type).
            destination: Where it goes (URL or adapter name), recorded in the audit log.
            encode: Turns ``payload`` into the exact bytes the transport puts on the network
                (e.g. a vLLM completions body); default its JSON.
            note: More about the payload for its audit record (JSON values).

        Returns:
            The bytes to send, with the audit record's sequence number.

        Raises:
            DisallowedPayloadError: ``payload`` is not an allowed protocol type.
            PrivacyViolation: A blocked or pseudonymized span is still in the payload; nothing
                may be sent. The message names the entity and field, never the text.
            AuditLogError: The audit record could not be written; nothing may be sent.
        """
        self._check_type(payload)
        payload = self._linked(payload)
        data = encode(payload) if encode is not None else payload.model_dump_json().encode()
        findings, fields, ids, words = self._scan(data)
        fired = self._refuse_unless_clean(findings)
        try:
            record = self.audit_log.append(
                destination=destination,
                payload=data,
                payload_type=type(payload).__name__,
                detectors=dict(fired),
                policy=self.policy.model_dump(mode="json"),
                note=note,
            )
        except AuditLogError:
            self._report.add(payloads_refused=1)
            raise
        self._report.fired(fired)
        self._report.sent(destination=destination, fields=fields, seq=record.seq)
        return Admitted(data=data, seq=record.seq, token_ids=ids, words=words)

    @contextlib.contextmanager
    def sending(self) -> Iterator[None]:
        """Hold while one payload is admitted, sent and delivered: the next payload's receipt
        link names this one's receipt, so sends through one guard go one at a time."""
        with self._sending:
            yield

    def delivered(
        self, admitted: Admitted, received: int, receipt: Mapping[str, Any] | None = None
    ) -> None:
        """Count an admitted payload as sent, and its answer of ``received`` bytes; store the
        ``receipt`` the server signed for it, if it sent one, beside its audit record."""
        if receipt:
            self.audit_log.attach_receipt(admitted.seq, receipt)
        self._report.add(
            payloads=1,
            bytes_sent=len(admitted.data),
            bytes_received=received,
            token_ids_sent=admitted.token_ids,
            words_sent=admitted.words,
        )

    def send(
        self,
        payload: BaseModel,
        destination: str,
        transmit: Callable[[bytes], bytes],
        *,
        encode: Callable[[Any], bytes] | None = None,
    ) -> bytes:
        """Encode, scan, audit, then transmit ``payload``: :meth:`admit`, the send, and
        :meth:`delivered` in one call.

        Args:
            payload: An instance of one of ``allowed_types`` (exact type).
            destination: Where it goes (URL or adapter name), recorded in the audit log.
            transmit: Sends the bytes and returns the response bytes; called only after the
                audit record is on disk, and not at all if the payload is refused.
            encode: Turns ``payload`` into the exact bytes the transport puts on the network
                (e.g. a vLLM completions body); default its JSON. Those bytes, and no others,
                are scanned, recorded and handed to ``transmit``.

        Returns:
            The response bytes from ``transmit``.

        Raises:
            DisallowedPayloadError: ``payload`` is not an allowed protocol type.
            PrivacyViolation: A blocked or pseudonymized span is still in the payload; nothing
                was sent. The message names the entity and field, never the text.
            AuditLogError: The audit record could not be written; nothing was sent.
        """
        with self.sending():
            admitted = self.admit(payload, destination, encode=encode)
            response = transmit(admitted.data)
            self.delivered(admitted, len(response), _receipt_of(response))
        return response

    def _linked(self, payload: BaseModel) -> BaseModel:
        """The payload carrying the link to the last receipt, when its type has the field."""
        if "receipt_prev" not in type(payload).model_fields:
            return payload
        link = self.audit_log.receipt_link()
        return payload.model_copy(update={"receipt_prev": link}) if link else payload

    def _check_type(self, payload: BaseModel) -> None:
        if type(payload) not in self._allowed:
            self._report.add(payloads_refused=1)
            allowed = ", ".join(t.__name__ for t in self._allowed)
            raise DisallowedPayloadError(
                f"only protocol types may leave the device ({allowed}); got "
                f"{type(payload).__name__}. Build one of those instead"
            )

    def _refuse_unless_clean(self, findings: list[Finding]) -> Counter[str]:
        """The entities that fired; raises if a blocked or pseudonymized span is still there."""
        fired = Counter(f.span.entity for f in findings if f.field != "<joined>")
        # A joined view repeats what the fields hold; count an entity from it only when no
        # single field had it (a span straddling fields).
        straddling = {f.span.entity for f in findings if f.field == "<joined>"} - set(fired)
        fired.update(dict.fromkeys(straddling, 1))
        stopped = [
            f
            for f in findings
            if f.action != "allow" and (f.field != "<joined>" or f.span.entity in straddling)
        ]
        if stopped:
            self._report.add(payloads_refused=1)
            self._report.fired(fired)
            where = sorted({f"{f.span.entity} in {f.field}" for f in stopped})
            raise PrivacyViolation(
                f"payload refused, nothing was sent: {', '.join(where)} (policy: "
                f"{', '.join(sorted({f.action for f in stopped}))}). Screen the text with "
                "EgressGuard.screen_text and send its safe_text"
            )
        return fired

    # -- reporting -------------------------------------------------------------------------------

    @property
    def report(self) -> PrivacyReport:
        """A snapshot of the counters since the last :meth:`reset_report`."""
        lift = self.lift.report()
        return self._report.snapshot().model_copy(
            update={
                "tokens_kept_for_lift": lift.tokens_kept,
                "context_lift_sent": lift.nats_sent,
                "max_context_lift_sent": lift.largest_sent,
            }
        )

    def reset_report(self) -> PrivacyReport:
        """Return the current report and start a new one, with a fresh context-lift budget
        (call once per generation)."""
        with self._lock:
            snap = self.report
            self._report.reset()
            self.lift = self._new_lift()
            return snap


def _receipt_of(response: bytes) -> dict[str, Any] | None:
    """The receipt a server returned with its answer (a JSON body's ``receipt``), if any."""
    try:
        doc = json.loads(response)
    except ValueError:
        return None
    receipt = doc.get("receipt") if isinstance(doc, dict) else None
    return receipt if isinstance(receipt, dict) else None
