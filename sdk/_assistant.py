"""The public facade: ``Assistant``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from specsteer._config import GenerationConfig
from specsteer._engine import DEFAULT_SYSTEM_PROMPT, Decoder, build_prompt
from specsteer._result import GenerationResult
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter import CloudVerifier, InProcessVerifier

__all__ = ["Assistant"]


class Assistant:
    """A private, personalized assistant: a device model steered by private context, verified by a
    cloud model that never sees that context.

    Args:
        device: the small model on the device.
        cloud: a cloud verifier; ``None`` allows only ``method='device_only'``.
        config: default generation settings (each call may override fields).
        system_prompt: instructions shared by the device and the cloud.

    Example:
        >>> from specsteer.testing import tiny_backend
        >>> assistant = Assistant.in_process(tiny_backend(0), tiny_backend(1))
        >>> result = assistant.generate("what is my plan for friday?", context="dinner in rome")
        >>> result.stats.method
        'specsteer'
    """

    def __init__(
        self,
        device: ModelBackend,
        cloud: CloudVerifier | None = None,
        *,
        config: GenerationConfig | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    ) -> None:
        self.config = config or GenerationConfig()
        self.system_prompt = system_prompt
        self.decoder = Decoder(device, cloud)

    @classmethod
    def in_process(
        cls, device: ModelBackend, cloud_model: ModelBackend, **kwargs: Any
    ) -> Assistant:
        """An assistant whose cloud model runs in this process (no network)."""
        return cls(device, InProcessVerifier(cloud_model), **kwargs)

    def generate(
        self,
        query: str | Sequence[Mapping[str, str]],
        *,
        context: str = "",
        on_tokens: Callable[[list[int]], None] | None = None,
        **overrides: Any,
    ) -> GenerationResult:
        """Answer ``query`` using the private ``context`` on the device only.

        Args:
            query: the request, or a chat as a list of ``{"role", "content"}`` dicts.
            context: private text for the device model; never sent to the cloud.
            on_tokens: streaming callback, called with token ids as they become final.
            **overrides: fields of :class:`GenerationConfig` for this call (e.g. ``lam=0.3``).

        Raises:
            InvalidInputError: empty query or malformed messages.
            ConfigurationError: an unknown or invalid override.
        """
        config = self._config(overrides)
        prompt = build_prompt(query, context, system_prompt=self.system_prompt)
        return self.decoder.generate(prompt, config, on_tokens=on_tokens)

    def _config(self, overrides: Mapping[str, Any]) -> GenerationConfig:
        from pydantic import ValidationError

        from specsteer._errors import ConfigurationError

        if not overrides:
            return self.config
        try:
            return GenerationConfig.model_validate({**self.config.model_dump(), **overrides})
        except ValidationError as e:
            raise ConfigurationError(f"invalid generation setting: {e}") from e

    def close(self) -> None:
        """Release the cloud connection."""
        if self.decoder.cloud is not None:
            self.decoder.cloud.close()
