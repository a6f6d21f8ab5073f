"""Cloud on the reference server: the cloud model runs behind HTTP, the private context stays here.

Run: python examples/reference_server.py
(starts the reference server in a background thread on 127.0.0.1; in production run
``specsteer serve`` on the cloud host and point ``HttpVerifier`` at it)
"""

import secrets

from specsteer import Assistant, ModelBackend
from specsteer.cloud_adapter import BackgroundServer, HttpVerifier, VerifierCore, create_app


def main(device: ModelBackend | None = None, cloud_model: ModelBackend | None = None) -> str:
    if device is None or cloud_model is None:
        from specsteer import load_smollm2

        device = load_smollm2()
        cloud_model = device
    token = secrets.token_urlsafe(16)
    server = BackgroundServer(create_app(VerifierCore(cloud_model), token=token)).start()
    try:
        with HttpVerifier(server.url, token=token) as cloud:
            assistant = Assistant(device, cloud)
            result = assistant.generate(
                "What should I bring to dinner on Friday?",
                context="Dinner at my sister Lena's on Friday; she is vegetarian.",  # stays here
                max_new_tokens=32,
            )
    finally:
        server.stop()
    print(result.text)
    s = result.stats
    print(f"{s.cloud_calls} cloud calls over HTTP, {s.bytes_sent} bytes sent, fallback={s.fallback}")
    return result.text


if __name__ == "__main__":
    main()
