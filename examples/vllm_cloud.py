"""Cloud on vLLM (or any OpenAI-compatible server with vLLM's ``prompt_logprobs``).

Run: python examples/vllm_cloud.py https://gpu-host:8000 Qwen/Qwen2.5-7B-Instruct ./qwen2.5-0.5b
The device model must share the served model's tokenizer (token ids are sent); $VLLM_API_KEY is
sent as the bearer token. Plain http:// is refused for any host but this machine (the key and the
drafts would cross the network in the clear); pass insecure_http=True only on a trusted network.
"""

import os
import sys

from specsteer import Assistant, ModelBackend
from specsteer.cloud_adapter import OpenAICompatibleVerifier


def main(base_url: str, served_model: str, device: ModelBackend, token: str | None = None) -> str:
    with OpenAICompatibleVerifier(base_url, served_model, tokenizer=device, token=token) as cloud:
        assistant = Assistant(device, cloud)
        result = assistant.generate(
            "Plan my Saturday morning.",
            context="Long run on Saturday mornings; marathon in April.",  # stays on the device
            temperature=1.0,  # vLLM returns log-probabilities at temperature 1
            ctxfree_source="device",  # vLLM hosts no copy of the device model
            max_new_tokens=48,
        )
    print(result.text)
    print(f"acceptance {result.stats.acceptance_rate:.0%}, fallback={result.stats.fallback}")
    return result.text


if __name__ == "__main__":
    from specsteer import TransformersBackend

    url, model_name, device_path = sys.argv[1], sys.argv[2], sys.argv[3]
    main(url, model_name, TransformersBackend.from_pretrained(device_path), os.environ.get("VLLM_API_KEY"))
