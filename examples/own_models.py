"""Bring your own models: any local Hugging Face folder (or GGUF file) on either side.

Run: python examples/own_models.py DEVICE_MODEL_DIR CLOUD_MODEL_DIR
e.g. Qwen2.5-0.5B-Instruct on the device and Qwen2.5-1.5B-Instruct as the cloud model.
"""

import sys

from specsteer import Assistant, TransformersBackend


def main(device_path: str, cloud_path: str) -> str:
    device = TransformersBackend.from_pretrained(device_path)  # never downloads
    cloud = TransformersBackend.from_pretrained(cloud_path)
    assistant = Assistant.in_process(device, cloud)
    result = assistant.generate(
        "Plan my Saturday morning.",
        context="Long runs are on Saturday mornings; I am training for a marathon.",
        max_new_tokens=48,
        lam=0.5,  # smaller accepts more drafts (faster), larger defers more to the cloud
    )
    print(result.text)
    print(result.stats.as_dict())
    return result.text


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
