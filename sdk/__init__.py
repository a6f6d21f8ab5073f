"""specsteer: private, personalized generation with SpecSteer (Draft-Verify-Recover)."""

from specsteer._assistant import Assistant
from specsteer._attack_run import run_attack
from specsteer._config import GenerationConfig, Method
from specsteer._defaults import (
    DEFAULT_CONFIG,
    DEFAULT_PAIR,
    PAIRS,
    default_assistant,
    default_models,
)
from specsteer._egress import PrivateEgress
from specsteer._engine import Decoder, Wire
from specsteer._errors import (
    CloudError,
    ConfigurationError,
    DegenerateScoresError,
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
from specsteer._eval import EvalExample, load_examples, load_records, run_eval, summarize
from specsteer._events import (
    DeviceWork,
    Exchange,
    Fallback,
    Finished,
    Round,
    RoundEvent,
    StatsFold,
    TextFold,
    TokenKind,
    Tokens,
)
from specsteer._methods import METHOD_NAMES, METHODS, MethodSpec
from specsteer._models import (
    cloud_runtime,
    device_runtime,
    load_cloud_qwen_coder_1_5b,
    load_device_qwen_coder_0_5b,
    load_qwen_coder_0_5b,
    load_qwen_coder_0_5b_llamacpp,
    load_qwen_coder_1_5b,
    load_qwen_coder_1_5b_llamacpp,
    load_smollm2,
)
from specsteer._private_context import PrivateContext
from specsteer._prompt import DEFAULT_SYSTEM_PROMPT, Prompt, build_prompt
from specsteer._remember import RememberPolicy
from specsteer._result import GenerationResult, GenerationStats, RoundStat
from specsteer._streaming import AnswerStream, Cut, Piece
from specsteer.backends import KVStream, ModelBackend, TransformersBackend

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_PAIR",
    "DEFAULT_SYSTEM_PROMPT",
    "METHODS",
    "METHOD_NAMES",
    "PAIRS",
    "AnswerStream",
    "Assistant",
    "CloudError",
    "ConfigurationError",
    "Cut",
    "Decoder",
    "DegenerateScoresError",
    "DeviceWork",
    "EvalExample",
    "Exchange",
    "Fallback",
    "Finished",
    "GenerationConfig",
    "GenerationResult",
    "GenerationStats",
    "InvalidInputError",
    "KVStream",
    "MemoryStoreError",
    "Method",
    "MethodSpec",
    "MissingDependencyError",
    "ModelBackend",
    "ModelLoadError",
    "Piece",
    "PrivacyViolation",
    "PrivateContext",
    "PrivateEgress",
    "Prompt",
    "ProtocolError",
    "RememberPolicy",
    "Round",
    "RoundEvent",
    "RoundStat",
    "RuntimeFailure",
    "SpecSteerError",
    "StatsFold",
    "TextFold",
    "TokenKind",
    "Tokens",
    "TransformersBackend",
    "UsageError",
    "Wire",
    "build_prompt",
    "cloud_runtime",
    "default_assistant",
    "default_models",
    "device_runtime",
    "load_cloud_qwen_coder_1_5b",
    "load_device_qwen_coder_0_5b",
    "load_examples",
    "load_qwen_coder_0_5b",
    "load_qwen_coder_0_5b_llamacpp",
    "load_qwen_coder_1_5b",
    "load_qwen_coder_1_5b_llamacpp",
    "load_records",
    "load_smollm2",
    "run_attack",
    "run_eval",
    "summarize",
]
