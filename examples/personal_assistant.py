"""A personal assistant in a dozen lines: private memories steer the answer.

The cloud never sees the memories; it sees drafts written with them, screened by the egress guard.

Run: python examples/personal_assistant.py
"""

from specsteer import DEFAULT_CONFIG, Assistant, ModelBackend
from specsteer.memory import MemoryStore


def main(device: ModelBackend | None = None, cloud: ModelBackend | None = None) -> str:
    if device is None or cloud is None:
        from specsteer import default_models

        device, cloud = default_models()
    memory = MemoryStore()  # encrypted, under ~/.specsteer
    memory.add("maya", "I am vegetarian and allergic to peanuts.")
    memory.add("maya", "My favourite dish is mushroom risotto.")
    assistant = Assistant.in_process(
        device, cloud, memory=memory, user_id="maya", config=DEFAULT_CONFIG
    )
    result = assistant.generate("Suggest a dinner I could cook tonight.", max_new_tokens=48)
    print(result.text)
    print(f"{result.stats.tokens_per_second:.1f} tokens/s, sent {result.privacy.bytes_sent} bytes")
    return result.text


if __name__ == "__main__":
    main()
