"""``specsteer serve`` renders prompts with the served model's chat template exactly as the
in-process verifier does: same loader, same token ids, same answers over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from specsteer import DEFAULT_PAIR, PAIRS
from specsteer.cloud_adapter import (
    BackgroundServer,
    HttpVerifier,
    InProcessVerifier,
    TokenIds,
    VerifierCore,
    VerifyParams,
    VerifyRequest,
    create_app,
    load_backend,
    server_main,
)
from specsteer.testing import tiny_backend

pytestmark = pytest.mark.timeout(120)

CHAT = [
    {"role": "system", "content": "You are a helpful personal assistant. Answer briefly."},
    {"role": "user", "content": "what is my plan for friday ?"},
]


def _served(argv: list[str]):  # type: ignore[no-untyped-def]
    """The cloud model exactly as ``specsteer serve`` would load it for ``argv``."""
    llm, _slm = server_main.cloud_models(server_main._parser().parse_args(argv))
    return load_backend(llm)


def test_serve_without_llm_uses_the_in_process_loader(monkeypatch) -> None:
    import specsteer._models as models

    cloud = tiny_backend(1)
    monkeypatch.setattr(models, "load_cloud_qwen_coder_1_5b", lambda: cloud)
    assert _served([]) is cloud


def test_the_in_process_pair_loads_the_cloud_model_with_the_same_function() -> None:
    import specsteer._models as models

    assert PAIRS[DEFAULT_PAIR][3] is models.load_cloud_qwen_coder_1_5b


def test_a_served_model_folder_renders_the_chat_to_the_same_ids(tmp_path: Path) -> None:
    cloud = tiny_backend(1)
    folder = tmp_path / "cloud-model"
    cloud.model.save_pretrained(folder)
    cloud.tokenizer.save_pretrained(folder)
    served = _served(["--llm", str(folder)])
    in_process = InProcessVerifier(cloud).backend
    ids = served.encode_chat(CHAT)
    assert ids == in_process.encode_chat(CHAT)
    # The template was applied: without one the prompt would read "user: ..." lines.
    assert ids != served.encode("".join(f"{m['role']}: {m['content']}\n" for m in CHAT))


def test_answers_over_http_equal_the_in_process_answers(tmp_path: Path) -> None:
    cloud = tiny_backend(1)
    folder = tmp_path / "cloud-model"
    cloud.model.save_pretrained(folder)
    cloud.tokenizer.save_pretrained(folder)
    app = create_app(VerifierCore(_served(["--llm", str(folder)])), token="t")
    request = VerifyRequest(
        request_id="r" * 32,
        prompt=CHAT,
        prefix=TokenIds(ids=[]),
        draft=TokenIds(ids=[10, 11, 12]),
        ctxfree_logprobs=[-1.0, -1.0, -1.0],
        params=VerifyParams(lam=0.5, top_k=5, greedy=True),
    )
    with BackgroundServer(app) as server, HttpVerifier(server.url, token="t") as http:
        remote = http.verify(request)
    local = InProcessVerifier(cloud).verify(request)
    assert remote.n_accepted == local.n_accepted
    assert remote.top_k.ids == local.top_k.ids
    assert remote.top_k.logprobs == pytest.approx(local.top_k.logprobs, abs=1e-5)
