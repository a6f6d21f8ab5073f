"""Next-token distributions of backend variants against the float32 transformers backend.

Same weights (the same GGUF file), real text: chats from the shipped personal-writing set
(memories as the system turn, the request, the reference answer). Every position is scored in
one pass per chat; the table reports, against float32 transformers:

* top-1: how often the most likely next token is the same;
* KL(float32 || variant) in nats, mean and max over positions;
* |d log p|: mean absolute difference of the log-probability of the token that actually comes
  next (what the verify step's ratio test reads).

Rows "answer" cover the positions that predict answer tokens (what drafting and verifying see);
rows "all" every position of the chat.

    .venv/bin/python tools/compare_backends.py --model 0.5b --chats 16 --variants tf-bf16,llamacpp
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import torch
from backend_speed import MODELS, load_variants, sample_chats

from specsteer.backends import ModelBackend


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", choices=sorted(MODELS), default="0.5b")
    ap.add_argument("--variants", default="tf-bf16,llamacpp")
    ap.add_argument("--chats", type=int, default=16)
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    names = ["tf-fp32", *args.variants.split(",")]
    loaded = load_variants(args.model, names, log)
    for name, b in loaded.items():
        if not isinstance(b, ModelBackend):
            raise SystemExit(f"{name} could not be loaded: {b}")
    ref = loaded["tf-fp32"]
    assert isinstance(ref, ModelBackend)
    stats: dict[tuple[str, str], dict[str, list[float]]] = {}
    chats = sample_chats(args.chats)
    t0 = time.perf_counter()
    for n, chat in enumerate(chats):
        ids = ref.encode_chat(chat, add_generation_prompt=False)
        answer_from = len(ref.encode_chat(chat[:-1], add_generation_prompt=True)) - 1
        lp_ref = ref.forward(ids, None)[0][:-1].log_softmax(-1)  # [len-1, vocab]
        nxt = torch.tensor(ids[1:])
        for name in names[1:]:
            other = loaded[name]
            assert isinstance(other, ModelBackend)
            assert other.encode_chat(chat, add_generation_prompt=False) == ids
            lp = other.forward(ids, None)[0][:-1].log_softmax(-1)
            kl = (lp_ref.exp() * (lp_ref - lp)).sum(-1)
            top1 = (lp_ref.argmax(-1) == lp.argmax(-1)).float()
            dlogp = (lp_ref.gather(1, nxt[:, None]) - lp.gather(1, nxt[:, None])).abs()[:, 0]
            for part, lo in (("answer", answer_from), ("all", 0)):
                s = stats.setdefault((name, part), {"kl": [], "top1": [], "dlogp": []})
                s["kl"] += kl[lo:].tolist()
                s["top1"] += top1[lo:].tolist()
                s["dlogp"] += dlogp[lo:].tolist()
        log(f"chat {n + 1}/{len(chats)} ({len(ids)} tokens), {time.perf_counter() - t0:.0f} s")

    print(
        f"Model: {MODELS[args.model].name}, reference float32 transformers; {len(chats)} chats "
        f"from sdk/data/personal_writing.jsonl; {platform.machine()}, torch {torch.__version__}.\n"
    )
    print("| variant | positions | top-1 agreement | mean KL | max KL | mean abs d log p(next) |")
    print("|---|---|---|---|---|---|")
    for (name, part), s in stats.items():
        k = torch.tensor(s["kl"])
        print(
            f"| {name} ({part}) | {len(s['kl'])} | {100 * sum(s['top1']) / len(s['top1']):.1f}% "
            f"| {float(k.mean()):.4f} | {float(k.max()):.3f} "
            f"| {sum(s['dlogp']) / len(s['dlogp']):.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
