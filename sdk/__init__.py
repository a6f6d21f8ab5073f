"""specsteer: private, personalized generation with SpecSteer (Draft-Verify-Recover)."""

from specsteer._assistant import Assistant
from specsteer._config import GenerationConfig, Method
from specsteer._demo import DEFAULT_CONFIG, default_assistant
from specsteer._engine import DEFAULT_SYSTEM_PROMPT, Decoder, Prompt, Wire, build_prompt
from specsteer._errors import (
    CloudError,
    ConfigurationError,
    InvalidInputError,
    MemoryStoreError,
    MissingDependencyError,
    ModelLoadError,
    PrivacyViolation,
    ProtocolError,
    RuntimeFailure,
    SpecSteerError,
    UsageError,
)
from specsteer._models import load_gemma3_270m, load_smollm2
from specsteer._result import GenerationResult, GenerationStats, RoundStat
from specsteer.backends import KVStream, ModelBackend, TransformersBackend

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_SYSTEM_PROMPT",
    "Assistant",
    "CloudError",
    "ConfigurationError",
    "Decoder",
    "GenerationConfig",
    "GenerationResult",
    "GenerationStats",
    "InvalidInputError",
    "KVStream",
    "MemoryStoreError",
    "Method",
    "MissingDependencyError",
    "ModelBackend",
    "ModelLoadError",
    "PrivacyViolation",
    "Prompt",
    "ProtocolError",
    "RoundStat",
    "RuntimeFailure",
    "SpecSteerError",
    "TransformersBackend",
    "UsageError",
    "Wire",
    "build_prompt",
    "default_assistant",
    "load_gemma3_270m",
    "load_smollm2",
]
