"""An answer as it is written: round events, each piece of text marked by where it came from.

`Assistant.stream()` yields the engine's round events: `Tokens` (final tokens, and whether the
cloud accepted them, the device recovered them, or they stayed on the device), `Round`,
`Exchange`, `DeviceWork`, `Fallback`, and last `Finished` with the whole result.

Run: python examples/stream_events.py
"""

from specsteer import (
    DEFAULT_CONFIG,
    Assistant,
    Exchange,
    Finished,
    ModelBackend,
    Round,
    TextFold,
    Tokens,
)

#: How each kind of token is shown: [accepted], {recovered}, <local>, plain for the rest.
MARKS = {"accepted": "[{}]", "recovered": "{{{}}}", "local": "<{}>"}


def main(device: ModelBackend | None = None, cloud: ModelBackend | None = None) -> str:
    if device is None or cloud is None:
        from specsteer import default_models

        device, cloud = default_models()
    assistant = Assistant.in_process(device, cloud, config=DEFAULT_CONFIG)
    text = TextFold(device.decode, device.eos_token_ids)
    pieces, rounds, sent = [], 0, 0
    events = assistant.stream(
        "Write a short birthday message for my sister.",
        context="- My sister Lena loves jazz; her birthday is on March 14.",
        max_new_tokens=48,
    )
    for event in events:
        if isinstance(event, Tokens):
            piece = text.add(event)
            pieces.append(MARKS.get(event.kind, "{}").format(piece) if piece else "")
            print(pieces[-1], end="", flush=True)
        elif isinstance(event, Round):
            rounds += 1
        elif isinstance(event, Exchange):
            sent += event.bytes_sent
        elif isinstance(event, Finished):
            result = event.result
    print(f"\n{rounds} rounds, {sent} bytes sent; {result.stats.acceptance_rate:.0%} accepted")
    return "".join(pieces)


if __name__ == "__main__":
    main()
