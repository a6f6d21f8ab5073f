"""The decoding methods, one registry entry each: what a method needs of the cloud, what drafts,
what the cloud judges the draft against, and how the device recovers.

The config, the engine, the evaluation, the benchmarks, the web app and the CLI all read this
table; adding a method is adding an entry (and, if it recovers in a new way, a function in
:mod:`specsteer._recover`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from specsteer._errors import ConfigurationError
from specsteer._recover import Recovery, residual, steered

__all__ = ["METHODS", "METHOD_NAMES", "MethodSpec", "method_spec"]


@dataclass(frozen=True)
class MethodSpec:
    """One decoding method.

    Attributes:
        name: what users pass as ``method=``.
        summary: one line for help texts.
        cloud: ``"none"`` (the device alone), ``"verify"`` (rounds of draft, verify, recover) or
            ``"generate"`` (the cloud model answers alone, in one request).
        drafter: who drafts: the device model with the private context (``"private"``), without
            it (``"public"``), or nobody (``"none"``: every token is a recovery).
        target: what the cloud's ratio test judges the draft against: the fused distribution
            (``"fused"``, SpecSteer's test at ``lam``) or the cloud model itself (``"llm"``).
        lam: a fixed threshold for the ratio test; ``None`` takes the config's ``lam``.
        draft_top_p: the drafter's nucleus, when fixed (a correction that assumes drafts from the
            whole distribution needs 1); ``None`` takes the config's ``top_p``.
        recover: the recovery function (``None`` for methods without rounds).
        samples: draws of the cloud's whole distribution to ask for with each sampled verify
            request (what an exact correction needs; 0: none).
        judges_guess: after a draft that passed whole, the device's own next token stands
            when it passes the ratio test at the bonus position too
            (:func:`specsteer._recover.guess_passes`); the recovery writes the bonus otherwise.
    """

    name: str
    summary: str
    cloud: Literal["none", "verify", "generate"]
    drafter: Literal["private", "public", "none"] = "private"
    target: Literal["fused", "llm"] = "fused"
    lam: float | None = None
    draft_top_p: float | None = None
    recover: Recovery | None = steered
    samples: int = 0
    judges_guess: bool = False

    @property
    def needs_cloud(self) -> bool:
        """Whether the method sends anything to the cloud."""
        return self.cloud != "none"


#: Every method, in the order reports list them (the baselines first).
METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec(
            "device_only",
            "the device model with the private context, no cloud",
            cloud="none",
            recover=None,
        ),
        MethodSpec(
            "cloud_only",
            "the cloud model alone, without the context (one request)",
            cloud="generate",
            drafter="none",
            recover=None,
        ),
        MethodSpec(
            "token_fusion",
            "every token fused from the cloud's top-k, one cloud call per token",
            cloud="verify",
            drafter="none",
        ),
        MethodSpec(
            "speculative",
            "standard speculative decoding: the context-free device model drafts for the cloud",
            cloud="verify",
            drafter="public",
            target="llm",
            lam=1.0,
            draft_top_p=1.0,
            recover=residual,
            samples=32,
        ),
        MethodSpec(
            "specsteer",
            "draft with the private context, verify in the cloud, steer the recovery",
            cloud="verify",
            judges_guess=True,
        ),
    )
}

#: The method names, in report order.
METHOD_NAMES: tuple[str, ...] = tuple(METHODS)


def method_spec(name: str) -> MethodSpec:
    """The registry entry of ``name``.

    Raises:
        ConfigurationError: no such method.
    """
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown method {name!r}; choose one of: {', '.join(METHOD_NAMES)}"
        ) from None
