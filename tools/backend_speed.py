"""Speed of the model backends through the ``ModelBackend`` seam, as the engine calls it.

For each backend variant and thread count, three costs, in milliseconds per token:

* decode: one token on top of a KV cache holding ~100 tokens (drafting);
* verify: a block of 5 tokens on top of the same cache, then a crop back (the cloud's pass);
* prefill: a 300-token prompt from an empty cache (re-encoding).

Variants run interleaved, round after round, and the table shows medians, so load from other
processes on a shared machine falls on every variant alike.

    .venv/bin/python tools/backend_speed.py --model 0.5b \
        --variants tf-fp32,tf-bf16,tf-fp32-compile,tf-bf16-compile,llamacpp --threads 0,1

``--threads 0`` means torch's default (one per core). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from specsteer._models import QWEN_CODER_0_5B, QWEN_CODER_1_5B, split_gguf_path
from specsteer.backends import ModelBackend, TransformersBackend

MODELS = {"0.5b": QWEN_CODER_0_5B, "1.5b": QWEN_CODER_1_5B}
VARIANTS = ("tf-fp32", "tf-bf16", "tf-fp32-compile", "tf-bf16-compile", "llamacpp")
DATA = Path(__file__).resolve().parents[1] / "sdk" / "data" / "personal_writing.jsonl"


def sample_chats(n: int) -> list[list[dict[str, str]]]:
    """``n`` real chats from the shipped set: memories as the system turn, request, answer."""
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    chats = []
    for row in rows[:n]:
        memories = "\n".join(f"- {p['text']}" for p in row["profile"])
        chats.append(
            [
                {"role": "system", "content": f"You are a helpful assistant.\n{memories}"},
                {"role": "user", "content": row["input"]},
                {"role": "assistant", "content": row["output"]},
            ]
        )
    return chats


def load_variants(
    model: str, names: list[str], log: Callable[[str], None]
) -> dict[str, ModelBackend | str]:
    """Each named variant, or the reason it could not be built (a string)."""
    spec = MODELS[model]
    path = split_gguf_path(spec)
    out: dict[str, ModelBackend | str] = {}
    base: dict[torch.dtype, TransformersBackend] = {}
    for name in names:
        t0 = time.perf_counter()
        try:
            if name.startswith("tf-"):
                dtype = torch.bfloat16 if "bf16" in name else torch.float32
                if dtype not in base:
                    base[dtype] = TransformersBackend.from_gguf(path, name=spec.name, dtype=dtype)
                if name.endswith("-compile"):
                    compiled = torch.compile(base[dtype].model, dynamic=True)
                    out[name] = TransformersBackend(compiled, base[dtype].tokenizer, name=name)
                else:
                    out[name] = base[dtype]
            elif name == "llamacpp":
                from specsteer.backends import LlamaCppBackend

                out[name] = LlamaCppBackend.from_gguf(path, name=spec.name, n_ctx=1024)
            else:
                raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
        except Exception as e:  # report, keep measuring the others
            out[name] = f"{type(e).__name__}: {e}"
        log(f"loaded {name} in {time.perf_counter() - t0:.1f} s")
    return out


@dataclass
class Timings:
    decode: list[float] = field(default_factory=list)  # seconds per token
    verify: list[float] = field(default_factory=list)  # seconds per 5-token pass
    prefill: list[float] = field(default_factory=list)  # seconds per 300-token pass


def measure_once(backend: ModelBackend, ids: list[int], t: Timings, decode_steps: int = 8) -> None:
    """One round of the three measurements (caches built and dropped here)."""
    clock = time.perf_counter
    t0 = clock()
    backend.forward(ids[:300], None)
    t.prefill.append(clock() - t0)
    _, cache = backend.forward(ids[:100], None)
    for i in range(decode_steps):
        t0 = clock()
        _, cache = backend.forward([ids[100 + i]], cache)
        t.decode.append(clock() - t0)
    for _ in range(3):
        cache = backend.crop(cache, 100)
        assert cache is not None
        t0 = clock()
        _, cache = backend.forward(ids[100:105], cache)
        t.verify.append(clock() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", choices=sorted(MODELS), default="0.5b")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--threads", default="0,1", help="comma list; 0 = torch's default")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    default_threads = torch.get_num_threads()
    threads = [int(x) or default_threads for x in args.threads.split(",")]
    variants = load_variants(args.model, args.variants.split(","), log)
    ready = {k: v for k, v in variants.items() if isinstance(v, ModelBackend)}
    some = next(iter(ready.values()))
    chat = sample_chats(1)[0]
    ids = some.encode_chat(chat, add_generation_prompt=False)
    while len(ids) < 320:
        ids += ids
    timings = {(k, n): Timings() for k in ready for n in threads}
    warm: dict[str, float] = {}
    for key in list(ready):  # warm-up (and compilation) outside the timed rounds
        torch.set_num_threads(threads[0])
        t0 = time.perf_counter()
        try:
            for n in threads:
                torch.set_num_threads(n)
                measure_once(ready[key], ids, Timings(), decode_steps=2)
        except Exception as e:
            variants[key] = f"{type(e).__name__}: {str(e)[:200]}"
            del ready[key]
        warm[key] = time.perf_counter() - t0
        log(f"warm-up {key}: {warm[key]:.1f} s")
    for r in range(args.rounds):
        for key, backend in ready.items():
            for n in threads:
                torch.set_num_threads(n)
                measure_once(backend, ids, timings[key, n])
        log(f"round {r + 1}/{args.rounds} done")
    torch.set_num_threads(default_threads)

    def ms(xs: list[float], per: int) -> str:
        return f"{1000 * statistics.median(xs) / per:.1f}"

    print(
        f"Model: {MODELS[args.model].name}; {platform.processor() or platform.machine()}, "
        f"{default_threads} cores by torch's count; torch {torch.__version__}; "
        f"{args.rounds} rounds, medians.\n"
    )
    print(
        "| backend | threads | decode, ms/token | verify block of 5, ms/token (ms/pass) "
        "| prefill 300, ms/token (s/pass) | warm-up s |"
    )
    print("|---|---|---|---|---|---|")
    for key in variants:
        if key not in ready:
            print(f"| {key} | — | failed: {variants[key]} | | | |")
            continue
        for n in threads:
            t = timings[key, n]
            print(
                f"| {key} | {n} | {ms(t.decode, 1)} | {ms(t.verify, 5)} ({ms(t.verify, 1)}) "
                f"| {ms(t.prefill, 300)} ({statistics.median(t.prefill):.2f}) | {warm[key]:.0f} |"
            )
    for backend in {id(b): b for b in ready.values()}.values():
        backend.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
