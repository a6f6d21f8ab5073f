"""The llama.cpp backend on a tiny Llama written to a GGUF file here, checked against transformers.

The tiny model of ``specsteer.testing.tiny_backend`` is written with float32 weights, so llama.cpp
and transformers compute the same function and their logits must agree; the KV-cache tests
(block vs incremental, crop, two streams on one backend, threads) compare llama.cpp with itself.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from specsteer import Decoder, GenerationConfig, InvalidInputError, build_prompt
from specsteer._errors import MissingDependencyError
from specsteer.backends import KVStream, LlamaCppBackend, TransformersBackend
from specsteer.cloud_adapter import InProcessVerifier
from specsteer.testing import tiny_backend

QUERY = "what is my plan for friday ?"
CONTEXT = "my sister and i have dinner in rome on friday evening . i love pasta and wine"


def test_missing_llama_cpp_names_the_install(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import now fails
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    with pytest.raises(MissingDependencyError, match=r"specsteer\[llamacpp\]"):
        LlamaCppBackend(tmp_path / "m.gguf", tiny_backend(0).tokenizer)


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF's rotate-half rotary layout -> llama.cpp's interleaved one (as convert_hf_to_gguf)."""
    split = w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
    return split.swapaxes(1, 2).reshape(w.shape)


def write_gguf(backend: TransformersBackend, path: Path) -> Path:
    """Write a transformers Llama and its vocabulary as a float32 GGUF file llama.cpp can run."""
    import gguf

    model, tok = backend.model, backend.tokenizer
    cfg = model.config
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = cfg.hidden_size // n_head
    rope = getattr(cfg, "rope_parameters", None) or {}
    theta = float(rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0)))
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(theta)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    assert [i for _, i in vocab] == list(range(cfg.vocab_size))
    special = set(tok.all_special_ids)
    w.add_tokenizer_model("llama")
    w.add_token_list([t for t, _ in vocab])
    w.add_token_scores([0.0] * len(vocab))
    normal, control = gguf.TokenType.NORMAL, gguf.TokenType.CONTROL
    w.add_token_types([control if i in special else normal for _, i in vocab])
    w.add_bos_token_id(tok.bos_token_id)
    w.add_eos_token_id(tok.eos_token_id)
    w.add_unk_token_id(tok.unk_token_id)
    w.add_pad_token_id(tok.pad_token_id)

    def put(name: str, t: torch.Tensor) -> None:
        w.add_tensor(name, t.detach().float().numpy().copy())

    put("token_embd.weight", model.model.embed_tokens.weight)
    for i, layer in enumerate(model.model.layers):
        a, m = layer.self_attn, layer.mlp
        put(f"blk.{i}.attn_norm.weight", layer.input_layernorm.weight)
        q = _permute(a.q_proj.weight.detach().float().numpy(), n_head)
        k = _permute(a.k_proj.weight.detach().float().numpy(), n_kv)
        w.add_tensor(f"blk.{i}.attn_q.weight", q.copy())
        w.add_tensor(f"blk.{i}.attn_k.weight", k.copy())
        put(f"blk.{i}.attn_v.weight", a.v_proj.weight)
        put(f"blk.{i}.attn_output.weight", a.o_proj.weight)
        put(f"blk.{i}.ffn_norm.weight", layer.post_attention_layernorm.weight)
        put(f"blk.{i}.ffn_gate.weight", m.gate_proj.weight)
        put(f"blk.{i}.ffn_up.weight", m.up_proj.weight)
        put(f"blk.{i}.ffn_down.weight", m.down_proj.weight)
    put("output_norm.weight", model.model.norm.weight)
    put("output.weight", model.lm_head.weight)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def tf() -> TransformersBackend:
    return tiny_backend(0, name="tiny-slm")


@pytest.fixture(scope="module")
def gguf_file(tf, tmp_path_factory) -> Path:
    pytest.importorskip(
        "llama_cpp", reason="llama-cpp-python is not installed (make install-llamacpp)"
    )
    return write_gguf(tf, tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(scope="module")
def lc(gguf_file, tf) -> LlamaCppBackend:
    backend = LlamaCppBackend(gguf_file, tf.tokenizer, name="tiny-llamacpp", n_ctx=256)
    yield backend
    backend.close()


def _ids(backend, text: str = QUERY) -> list[int]:
    return backend.encode_chat([{"role": "user", "content": text}])


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    # llama.cpp keeps K and V in float16: agreement to about 1e-2 on logits of size ~10.
    assert a.shape == b.shape
    assert torch.allclose(a, b, atol=5e-2, rtol=0), float((a - b).abs().max())


def test_logits_match_transformers_at_every_position(lc, tf) -> None:
    ids = _ids(tf)
    mine, cache = lc.forward(ids, None)
    ref, _ = tf.forward(ids, None)
    assert mine.dtype == torch.float32 and mine.shape == (len(ids), tf.vocab_size)
    _close(mine, ref)
    assert torch.equal(mine.argmax(-1), ref.argmax(-1))
    assert cache.get_seq_length() == len(ids)


def test_text_side_is_the_transformers_one(lc, tf) -> None:
    assert lc.tokenizer_fingerprint() == tf.tokenizer_fingerprint()
    assert lc.encode_chat([{"role": "user", "content": QUERY}]) == _ids(tf)
    assert lc.eos_token_ids >= tf.eos_token_ids
    assert lc.end_token_id == tf.end_token_id
    assert lc.vocab_size == tf.vocab_size


def test_block_equals_token_by_token(lc) -> None:
    ids = _ids(lc)
    whole, _ = lc.forward(ids, None)
    rows, cache = [], None
    for t in ids:
        out, cache = lc.forward([t], cache)
        rows.append(out[0])
    _close(torch.stack(rows), whole)


def test_long_block_is_split_into_batches(gguf_file, tf) -> None:
    small = LlamaCppBackend(gguf_file, tf.tokenizer, n_ctx=256, n_batch=4)
    try:
        ids = _ids(tf)
        assert len(ids) > 8
        _close(small.forward(ids, None)[0], tf.forward(ids, None)[0])
    finally:
        small.close()


@pytest.mark.parametrize("rows", [1, 3, 6])
def test_tail_rows_equal_the_full_pass_across_batches(gguf_file, tf, rows: int) -> None:
    # Batches of 4: some carry no output row at all, one carries part of the tail.
    small = LlamaCppBackend(gguf_file, tf.tokenizer, n_ctx=256, n_batch=4)
    try:
        ids = _ids(tf)
        full, _ = tf.forward(ids, None)
        tail, cache = small.forward_tail(ids, None, rows)
        assert tail.shape == (rows, full.shape[1])
        _close(tail, full[-rows:])
        nxt, _ = small.forward([ids[0]], cache)  # the cache holds every position
        _close(nxt, tf.forward([*ids, ids[0]], None)[0][-1:])
    finally:
        small.close()


def test_crop_rolls_the_cache_back(lc) -> None:
    context, wrong, right = _ids(lc), _ids(lc, "dinner in rome")[:5], _ids(lc, "pasta")[:4]
    _, cache = lc.forward(context + wrong, None)
    cache = lc.crop(cache, len(context))
    assert cache is not None and cache.get_seq_length() == len(context)
    after_crop, cache = lc.forward(right, cache)
    fresh, _ = lc.forward(context + right, None)
    _close(after_crop, fresh[len(context) :])
    assert lc.crop(cache, 10_000) is cache  # nothing to drop


def test_two_streams_on_one_backend_keep_their_own_caches(lc) -> None:
    """The engine's private and public views: two streams, interleaved, never mixed up."""
    a_ctx, b_ctx = _ids(lc, CONTEXT + " " + QUERY), _ids(lc)
    draft = _ids(lc, "dinner in rome on friday")[-6:]
    private, public = lc.stream(), lc.stream()
    got_a, got_b = [], []
    for k in range(1, len(draft) + 1):  # grow both, one token at a time, interleaved
        got_a.append(private.logits(a_ctx + draft[: k - 1], draft[k - 1 : k]))
        got_b.append(public.logits(b_ctx + draft[: k - 1], draft[k - 1 : k]))
    got_a.append(private.logits(a_ctx, draft[:3]))  # a rejection: both crop back
    got_b.append(public.logits(b_ctx, draft[:3]))
    ref_a, ref_b = KVStream(lc), KVStream(lc)
    for k in range(1, len(draft) + 1):
        _close(got_a[k - 1], lc.forward(a_ctx + draft[:k], None)[0][-2:])
        _close(got_b[k - 1], lc.forward(b_ctx + draft[:k], None)[0][-2:])
    _close(got_a[-1], ref_a.logits(a_ctx, draft[:3]))
    _close(got_b[-1], ref_b.logits(b_ctx, draft[:3]))
    # Only new tokens were computed after the first call (the caches were kept).
    assert private.tokens_computed < len(a_ctx) + 3 * len(draft)


def test_streams_run_concurrently_in_threads(lc) -> None:
    seqs = [_ids(lc, QUERY), _ids(lc, CONTEXT), _ids(lc, "i love pasta and wine")]
    expected = [lc.forward(s, None)[0] for s in seqs]
    results: dict[int, torch.Tensor] = {}

    def run(i: int) -> None:
        stream = lc.stream()
        for _ in range(3):
            results[i] = stream.logits(seqs[i][:-1], seqs[i][-1:])
            stream.reset()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(seqs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, ref in enumerate(expected):
        _close(results[i], ref[-2:])


def test_a_dropped_cache_is_reused_cleared(lc) -> None:
    ids = _ids(lc)
    ref, _ = lc.forward(ids, None)
    for _ in range(8):  # more than the idle pool holds: contexts are freed and recreated
        stream = lc.stream()
        stream.logits(_ids(lc, CONTEXT))
        del stream
    again, _ = lc.forward(ids, None)
    _close(again, ref)


def test_context_overflow_is_refused_and_the_cache_survives(lc) -> None:
    ids = _ids(lc)
    before, cache = lc.forward(ids, None)
    with pytest.raises(InvalidInputError, match="n_ctx"):
        lc.forward([ids[0]] * 300, cache)
    assert cache.get_seq_length() == len(ids)
    out, _ = lc.forward([ids[-1]], lc.crop(cache, len(ids) - 1))
    _close(out, before[-1:])


def test_out_of_range_ids_are_refused(lc) -> None:
    with pytest.raises(InvalidInputError):
        lc.forward([lc.vocab_size], None)
    with pytest.raises(ValueError):
        lc.forward([], None)


def test_specsteer_with_llamacpp_device_equals_plain_greedy(lc, tf) -> None:
    """Same weights on both sides, no context: every draft is accepted and the output is the
    transformers model's own greedy decoding."""
    prompt = build_prompt(QUERY, "")
    cfg = GenerationConfig(method="specsteer", max_new_tokens=24)
    result = Decoder(lc, InProcessVerifier(tiny_backend(0))).generate(prompt, cfg)
    ids, out = tf.encode_chat(prompt.public_dicts()), []
    for _ in range(24):
        tok = int(tf.forward(ids + out, None)[0][-1].argmax())
        out.append(tok)
        if tok in tf.eos_token_ids:
            break
    assert list(result.token_ids) == out
    assert result.stats.accepted_tokens == result.stats.drafted_tokens > 0


def test_from_gguf_checks_the_file(tmp_path, tf) -> None:
    with pytest.raises(InvalidInputError, match="not found"):
        LlamaCppBackend.from_gguf(tmp_path / "none.gguf", tokenizer=tf.tokenizer)
    (tmp_path / "bad.gguf").write_bytes(b"nope")
    with pytest.raises(InvalidInputError, match="magic"):
        LlamaCppBackend.from_gguf(tmp_path / "bad.gguf", tokenizer=tf.tokenizer)


def test_docs_example_names_exist() -> None:
    """docs/backends.md's example needs the real models; check that it compiles and that every
    name it imports exists, so it cannot rot."""
    import ast
    import importlib
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "backends.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert blocks
    for block in blocks:
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{node.module}.{alias.name}"
