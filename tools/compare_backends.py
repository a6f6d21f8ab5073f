"""Next-token distributions of backend variants against the float32 transformers backend.

Same weights (the same GGUF file), real text: chats from the shipped personal-writing set
(memories as the system turn, the request, the reference answer). Every position is scored in
one pass per chat; the table reports, against float32 transformers:

* top-1: how often the most likely next token is the same;
* KL(float32 || variant) in nats, mean and max over positions;
* |d log p|: mean absolute difference of the log-probability of the token that actually comes
  next (what the verify step's ratio test reads).

Rows "answer" cover the positions that predict answer tokens (what drafting and verifying see);
rows "all" every position of the chat; rows "all but the first" leave out position 0, the
prediction after the chat's first token alone.

``--worst N`` lists the N positions of largest KL per variant. ``--verdicts`` also loads the
device model (Qwen2.5-Coder-0.5B on llama.cpp) and counts, on answer positions, the greedy ratio
tests ``P_L(next) >= lam * P_S0(next)`` whose verdict differs from float32's, per ``lam``.

    .venv/bin/python tools/compare_backends.py --model 0.5b --chats 16 --variants tf-bf16,llamacpp
    .venv/bin/python tools/compare_backends.py --model 1.5b --chats 12 --worst 12 --verdicts
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from dataclasses import dataclass, field

import torch
from backend_speed import MODELS, load_variants, sample_chats

from specsteer.backends import ModelBackend

LAMS = (0.1, 0.5, 1.0)
PARTS = ("answer", "all", "all but the first")


@dataclass
class Tally:
    kl: list[float] = field(default_factory=list)
    top1: list[float] = field(default_factory=list)
    dlogp: list[float] = field(default_factory=list)


@dataclass
class Comparison:
    stats: dict[tuple[str, str], Tally] = field(default_factory=dict)
    worst: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    flips: dict[tuple[str, float], int] = field(default_factory=dict)
    tests: int = 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", choices=sorted(MODELS), default="0.5b")
    ap.add_argument("--variants", default="tf-bf16,llamacpp")
    ap.add_argument("--chats", type=int, default=16)
    ap.add_argument("--worst", type=int, default=0, help="list the N positions of largest KL")
    ap.add_argument("--verdicts", action="store_true", help="count flipped ratio-test verdicts")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    names = ["tf-fp32", *args.variants.split(",")]
    loaded = load_variants(args.model, names, log)
    if args.verdicts:
        loaded["device"] = load_variants("0.5b", ["llamacpp"], log)["llamacpp"]
    for name, b in loaded.items():
        if not isinstance(b, ModelBackend):
            raise SystemExit(f"{name} could not be loaded: {b}")
    models = {k: v for k, v in loaded.items() if isinstance(v, ModelBackend)}
    out = Comparison()
    chats = sample_chats(args.chats)
    t0 = time.perf_counter()
    for n, chat in enumerate(chats):
        size = compare_chat(models, names, chat, n, args.worst, out)
        log(f"chat {n + 1}/{len(chats)} ({size} tokens), {time.perf_counter() - t0:.0f} s")
    print(
        f"Model: {MODELS[args.model].name}, reference float32 transformers; {len(chats)} chats "
        f"from sdk/data/personal_writing.jsonl; {platform.machine()}, torch {torch.__version__}.\n"
    )
    report(out, names[1:], models["tf-fp32"], args.worst)
    return 0


def compare_chat(
    models: dict[str, ModelBackend],
    names: list[str],
    chat: list[dict[str, str]],
    n: int,
    worst: int,
    out: Comparison,
) -> int:
    """Score one chat with every variant; returns its length in tokens."""
    ref = models["tf-fp32"]
    ids = ref.encode_chat(chat, add_generation_prompt=False)
    answer_from = len(ref.encode_chat(chat[:-1], add_generation_prompt=True)) - 1
    lp_ref = ref.forward(ids, None)[0][:-1].log_softmax(-1)  # [len-1, vocab]
    nxt = torch.tensor(ids[1:])
    verdict_ref = None
    if "device" in models:
        lp_dev = models["device"].forward(ids, None)[0][:-1].log_softmax(-1)
        s0 = lp_dev.gather(1, nxt[:, None])[answer_from:, 0]  # [answer] log P_S0(next)
        verdict_ref = verdicts(lp_ref, nxt, s0, answer_from)
        out.tests += len(s0)
    for name in names[1:]:
        other = models[name]
        assert other.encode_chat(chat, add_generation_prompt=False) == ids
        lp = other.forward(ids, None)[0][:-1].log_softmax(-1)
        kl = (lp_ref.exp() * (lp_ref - lp)).sum(-1)  # [len-1]
        if worst:
            rows = _worst_positions(ref, ids, answer_from, lp_ref, lp, kl, worst, n)
            out.worst.setdefault(name, []).extend(rows)
        top1 = (lp_ref.argmax(-1) == lp.argmax(-1)).float()
        dlogp = (lp_ref.gather(1, nxt[:, None]) - lp.gather(1, nxt[:, None])).abs()[:, 0]
        for part, lo in zip(PARTS, (answer_from, 0, 1), strict=True):
            t = out.stats.setdefault((name, part), Tally())
            t.kl += kl[lo:].tolist()
            t.top1 += top1[lo:].tolist()
            t.dlogp += dlogp[lo:].tolist()
        if verdict_ref is not None:
            mine = verdicts(lp, nxt, s0, answer_from)
            for lam in LAMS:
                flipped = int((mine[lam] != verdict_ref[lam]).sum())
                out.flips[name, lam] = out.flips.get((name, lam), 0) + flipped
    return len(ids)


def verdicts(
    lp: torch.Tensor, nxt: torch.Tensor, s0: torch.Tensor, answer_from: int
) -> dict[float, torch.Tensor]:
    """The greedy ratio test on each answer position, per lam: log P_L >= log lam + log P_S0."""
    pl = lp.gather(1, nxt[:, None])[answer_from:, 0]  # [answer] log P_L(next)
    return {lam: pl >= math.log(lam) + s0 for lam in LAMS}


def report(out: Comparison, variants: list[str], ref: ModelBackend, worst: int) -> None:
    print("| variant | positions | top-1 agreement | mean KL | max KL | mean abs d log p(next) |")
    print("|---|---|---|---|---|---|")
    for (name, part), t in out.stats.items():
        k = torch.tensor(t.kl)
        print(
            f"| {name} ({part}) | {len(t.kl)} | {100 * sum(t.top1) / len(t.top1):.1f}% "
            f"| {float(k.mean()):.4f} | {float(k.max()):.3f} | {sum(t.dlogp) / len(t.dlogp):.3f} |"
        )
    if out.tests:
        print(f"\nRatio-test verdicts that differ from float32's, of {out.tests} answer positions:\n")
        print("| variant | " + " | ".join(f"λ={lam:g}" for lam in LAMS) + " |")
        print("|---|" + "---:|" * len(LAMS))
        for name in variants:
            print(f"| {name} | " + " | ".join(str(out.flips[name, lam]) for lam in LAMS) + " |")
    for name, rows in out.worst.items():
        print(f"\nLargest KL, {name}:\n")
        print("| KL | chat | position | part | token read there | float32 top-3 | variant top-3 |")
        print("|---|---|---|---|---|---|---|")
        for _, line in sorted(rows, key=lambda r: -r[0])[:worst]:
            print(line)


def _worst_positions(
    ref: ModelBackend,
    ids: list[int],
    answer_from: int,
    lp_ref: torch.Tensor,
    lp: torch.Tensor,
    kl: torch.Tensor,
    n: int,
    chat: int,
) -> list[tuple[float, str]]:
    """The ``n`` positions of largest KL in one chat, as table rows keyed by their KL."""

    def top(row: torch.Tensor) -> str:
        vals, idx = row.topk(3)
        return ", ".join(
            f"{ref.decode([int(i)], skip_special_tokens=False)!r} {float(v):.2f}"
            for v, i in zip(vals, idx, strict=True)
        )

    rows = []
    for pos in kl.topk(min(n, kl.numel())).indices.tolist():
        part = "answer" if pos >= answer_from else "prompt"
        read = ref.decode([ids[pos]], skip_special_tokens=False)
        rows.append(
            (
                float(kl[pos]),
                f"| {float(kl[pos]):.3f} | {chat + 1} | {pos} of {len(ids)} | {part} | {read!r} "
                f"| {top(lp_ref[pos])} | {top(lp[pos])} |",
            )
        )
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
