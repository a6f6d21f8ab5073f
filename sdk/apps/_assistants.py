"""Builds the assistant a surface (CLI, web app) runs: which device model, which cloud, which store.

The cloud is the embedded model in this process by default, or a reference server
(``specsteer serve``) reached over HTTP with ``--cloud URL``; the bearer token then comes from
the same environment variable the server reads, so it never shows in a process list.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from specsteer._assistant import Assistant
from specsteer._egress import PrivateEgress
from specsteer._errors import CloudError, ConfigurationError
from specsteer._home import specsteer_home
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter import CloudVerifier, InProcessVerifier
from specsteer.privacy import EgressPolicy

if TYPE_CHECKING:
    from specsteer._engine import Wire
    from specsteer._remember import RememberPolicy
    from specsteer.memory import MemoryStore

__all__ = [
    "TOKEN_ENV",
    "CloudChoice",
    "build_assistant",
    "describe",
    "device_model",
    "http_verifier",
    "named_models",
    "open_memory",
]

#: The bearer token's environment variable: the one ``specsteer serve`` reads (``server_main``,
#: not imported here so that a client needs no server dependencies).
TOKEN_ENV = "SPECSTEER_SERVER_TOKEN"


@dataclass(frozen=True)
class CloudChoice:
    """Where the cloud model runs.

    Attributes:
        url: a reference server's root (``http://127.0.0.1:8000``); None for in process.
        model: the model the server must serve (checked against its ``/healthz``; put in each
            request); None takes whatever it serves.
        wire: how drafts travel: ``auto``, ``ids`` (shared tokenizer) or ``text``.
    """

    url: str | None = None
    model: str | None = None
    wire: Wire = "auto"

    def check(self) -> None:
        """Ask the server's ``/healthz`` that it is up and serves :attr:`model` (when given).

        Raises:
            CloudError: the server cannot be reached or does not answer.
            ConfigurationError: it serves another model.
        """
        if self.url is None:
            return
        token = os.environ.get(TOKEN_ENV)
        headers = {"authorization": f"Bearer {token}"} if token else {}
        try:
            reply = httpx.get(self.url.rstrip("/") + "/healthz", headers=headers, timeout=10.0)
            reply.raise_for_status()
            served = str(reply.json().get("model"))
        except (httpx.HTTPError, ValueError, AttributeError) as e:
            raise CloudError(
                f"the cloud at {self.url} does not answer ({type(e).__name__}: {e}); start it "
                f"with `specsteer serve`, and set ${TOKEN_ENV} if it needs a token"
            ) from e
        if self.model is not None and served != self.model:
            raise ConfigurationError(
                f"the cloud at {self.url} serves {served!r}, not {self.model!r}; pass "
                f"--cloud-model {served!r}, or start the server with --model {self.model!r}"
            )


def named_models() -> dict[str, Callable[[], ModelBackend]]:
    """The embedded models by name (both sides of every pair in ``PAIRS``), for ``serve``."""
    from specsteer._defaults import PAIRS

    named: dict[str, Callable[[], ModelBackend]] = {}
    for device_label, load_device, cloud_label, load_cloud in PAIRS.values():
        named[device_label] = load_device
        named[cloud_label] = load_cloud
    return named


def open_memory(tiny: bool = False) -> MemoryStore:
    """The encrypted store under ``$SPECSTEER_HOME``; with ``tiny``, one with a hashing embedder
    in its own folder (vectors of another embedder must not share a store)."""
    from specsteer.memory import HashEmbedder, MemoryStore

    if tiny:
        return MemoryStore(specsteer_home() / "memory-tiny", embedder=HashEmbedder())
    return MemoryStore()


def http_verifier(url: str, device: ModelBackend) -> CloudVerifier:
    """The client of the server at ``url``, its token from ``$SPECSTEER_SERVER_TOKEN``."""
    from specsteer.cloud_adapter import HttpVerifier

    token = os.environ.get(TOKEN_ENV) or None
    return HttpVerifier(url, token=token, vocab_size=device.vocab_size)


def device_model(pair: str | None, tiny: bool, progress: bool = False) -> ModelBackend:
    """The device side of an embedded pair (or a tiny model)."""
    return _models(pair, tiny, need_cloud=False, progress=progress)[0]


def describe(cloud: CloudChoice, pair: str | None, tiny: bool) -> str:
    """One line for people: which models run where."""
    from specsteer._defaults import DEFAULT_PAIR, PAIRS

    device, cloud_label = ("a tiny test model", "a tiny test model")
    if not tiny and (pair or DEFAULT_PAIR) in PAIRS:
        device, _, cloud_label, _ = PAIRS[pair or DEFAULT_PAIR]
    where = f"the server at {cloud.url}" if cloud.url else f"{cloud_label} in this process"
    return f"{device} on this device, verified by {where}"


def _models(
    pair: str | None, tiny: bool, need_cloud: bool, progress: bool
) -> tuple[ModelBackend, ModelBackend | None]:
    if tiny:
        from specsteer.testing import tiny_backend

        return tiny_backend(0), tiny_backend(1) if need_cloud else None
    from specsteer._defaults import DEFAULT_PAIR, PAIRS, default_models, load_with_progress

    name = pair or DEFAULT_PAIR
    if name not in PAIRS:
        raise ConfigurationError(f"unknown pair {name!r}; choose one of: {', '.join(PAIRS)}")
    if need_cloud:
        return default_models(progress=progress, pair=name)
    label, load_device = PAIRS[name][:2]
    return load_with_progress(progress, f"loading the device model ({label})", load_device), None


def build_assistant(
    *,
    cloud: CloudChoice,
    pair: str | None = None,
    tiny: bool = False,
    user_id: str | None = None,
    memory: MemoryStore | None = None,
    progress: bool = False,
    remember: bool | RememberPolicy = False,
    max_context_lift: float | None = None,
) -> Assistant:
    """An assistant over an embedded pair (or tiny models), its cloud in process or over HTTP.

    Args:
        cloud: where the cloud model runs.
        pair: which of ``PAIRS`` (default: the default pair); over HTTP only its device side
            loads.
        tiny: tiny models built in code instead (tests, trying a surface).
        user_id: whose memories steer the answers.
        memory: the store (opened under ``$SPECSTEER_HOME`` when ``user_id`` is given).
        progress: show a spinner while models load.
        remember: store the user's statements from each answered turn (needs ``user_id``).
        max_context_lift: the context-lift policy's tau in nats (``EgressPolicy``); None: the
            policy's default; ``inf``: off.

    Raises:
        ConfigurationError: an unknown pair, a malformed URL, another model served.
        CloudError: the server does not answer.
    """
    from specsteer._defaults import DEFAULT_CONFIG

    cloud.check()
    device, cloud_model = _models(pair, tiny, need_cloud=cloud.url is None, progress=progress)
    if user_id is not None and memory is None:
        memory = open_memory(tiny)
    verifier: CloudVerifier
    if cloud.url is None:
        assert cloud_model is not None
        verifier = InProcessVerifier(cloud_model)
    else:
        verifier = http_verifier(cloud.url, device)
    assistant = Assistant(
        device,
        verifier,
        memory=memory,
        user_id=user_id,
        config=None if tiny else DEFAULT_CONFIG,
        wire=cloud.wire,
        remember=remember,
        privacy=_egress(device, max_context_lift),
    )
    if cloud.model is not None:
        assistant.decoder.model = cloud.model
    return assistant


def _egress(device: ModelBackend, max_context_lift: float | None) -> bool | PrivateEgress:
    """The default door, or one whose policy sets its own tau."""
    if max_context_lift is None:
        return True
    policy = EgressPolicy(max_context_lift=max_context_lift)
    return PrivateEgress(policy=policy, decode_ids=device.decode)
