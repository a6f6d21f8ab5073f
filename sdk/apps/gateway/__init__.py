"""``specsteer gateway``: OpenAI's Chat Completions API on the device (see docs/gateway.md)."""

from specsteer.apps.gateway._app import USER_HEADER, create_gateway
from specsteer.apps.gateway._errors import RequestRefused
from specsteer.apps.gateway._schema import KNOBS
from specsteer.apps.gateway._serve import TOKEN_ENV, gateway_token, run_gateway

__all__ = [
    "KNOBS",
    "TOKEN_ENV",
    "USER_HEADER",
    "RequestRefused",
    "create_gateway",
    "gateway_token",
    "run_gateway",
]
