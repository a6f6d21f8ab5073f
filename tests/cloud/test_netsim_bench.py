"""The network simulator, the server benchmark, the server entry point, and the public API."""

from __future__ import annotations

import subprocess
import sys

import pytest

import specsteer.cloud_adapter as cloud
from specsteer import CloudError, ConfigurationError, Decoder, GenerationConfig, build_prompt
from specsteer.cloud_adapter import (
    CloudVerifier,
    InProcessVerifier,
    SimulatedNetwork,
    VerifyRequest,
    VerifyResponse,
)

pytestmark = pytest.mark.timeout(60)


def run(device, verifier, **kw):
    cfg = GenerationConfig(**{"max_new_tokens": 10, **kw})
    return Decoder(device, verifier).generate(build_prompt("what is my plan ?", "pasta"), cfg)


def test_simulated_network_adds_rtt_and_bandwidth_per_call(slm, llm) -> None:
    sleeps: list[float] = []
    net = SimulatedNetwork(
        InProcessVerifier(llm), rtt_ms=40, bandwidth_mbps=1.0, sleep=sleeps.append
    )
    res = run(slm, net)
    assert res.token_ids == run(slm, InProcessVerifier(llm)).token_ids
    assert net.calls == res.stats.cloud_calls == len(sleeps)
    assert net.bytes_sent == res.stats.bytes_sent and net.bytes_received == res.stats.bytes_received
    total_bytes = net.bytes_sent + net.bytes_received
    assert sum(sleeps) == pytest.approx(0.040 * net.calls + total_bytes * 8 / 1e6)
    assert net.delay_seconds == pytest.approx(sum(sleeps))


def test_simulated_network_really_sleeps_and_jitters(llm) -> None:
    import time

    net = SimulatedNetwork(InProcessVerifier(llm), rtt_ms=30, jitter_ms=20, seed=1)
    t0 = time.perf_counter()
    delays = [net.delay_for(0) for _ in range(50)]
    assert all(0.030 <= d <= 0.050 for d in delays) and len(set(delays)) > 1
    req = VerifyRequest(
        request_id="x",
        prompt=[{"role": "user", "content": "hi"}],
        prefix={"kind": "ids", "ids": []},
        draft={"kind": "ids", "ids": [10]},
        ctxfree_logprobs=[-1.0],
    )
    net.verify(req)
    assert time.perf_counter() - t0 >= 0.030


def test_simulated_network_charges_failed_calls(slm) -> None:
    class Down(CloudVerifier):
        def verify(self, request: VerifyRequest) -> VerifyResponse:
            raise CloudError("down")

    sleeps: list[float] = []
    net = SimulatedNetwork(Down(), rtt_ms=10, sleep=sleeps.append)
    res = run(slm, net)
    assert res.stats.fallback is not None and sleeps == [0.010]
    with pytest.raises(ConfigurationError):
        SimulatedNetwork(Down(), rtt_ms=-1)
    with pytest.raises(ConfigurationError):
        SimulatedNetwork(Down(), rtt_ms=1, bandwidth_mbps=0)


def test_server_bench_reports_throughput_and_latency(llm) -> None:
    result = cloud.run_server_bench(
        requests=40, concurrency=4, warmup=4, core=cloud.VerifierCore(llm)
    )
    assert result.requests == 40 and result.errors == 0
    assert result.requests_per_second > 0
    assert 0 < result.p50_ms <= result.p99_ms
    md = cloud.render_markdown(result)
    assert "requests/s" in md and "p99" in md and f"| {result.requests} | 0 |" in md
    assert result.as_dict()["concurrency"] == 4


def test_server_entry_point_refuses_public_address_without_token(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "SPECSTEER_HOME": str(tmp_path)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "specsteer.cloud_adapter.server_main",
            "--tiny",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 2
    assert "without a bearer token" in proc.stderr


def test_public_api_is_deliberate() -> None:
    expected = {
        "PROTOCOL_VERSION",
        "BackgroundServer",
        "ChatMessage",
        "CircuitBreaker",
        "CloudVerifier",
        "HttpVerifier",
        "InProcessVerifier",
        "OpenAICompatibleVerifier",
        "ServerBenchResult",
        "ServerLimits",
        "SimulatedNetwork",
        "StreamPool",
        "Text",
        "TokenIds",
        "TopK",
        "Usage",
        "VerifierCore",
        "VerifyParams",
        "VerifyRequest",
        "VerifyResponse",
        "check_response",
        "create_app",
        "load_backend",
        "render_markdown",
        "run_server",
        "run_server_bench",
        "serve",
    }
    assert expected <= set(cloud.__all__)
    for name in cloud.__all__:
        assert getattr(cloud, name) is not None
    with pytest.raises(AttributeError):
        cloud.not_a_name  # noqa: B018


def test_device_side_import_does_not_load_the_server() -> None:
    code = (
        "import sys, specsteer, specsteer.cloud_adapter as c; "
        "assert 'fastapi' not in sys.modules and 'uvicorn' not in sys.modules; "
        "c.HttpVerifier; c.OpenAICompatibleVerifier; "
        "assert 'fastapi' not in sys.modules; c.create_app; assert 'fastapi' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_load_backend_reads_a_local_model_folder(tmp_path, llm) -> None:
    from specsteer import InvalidInputError

    llm.model.save_pretrained(tmp_path / "cloud")
    llm.tokenizer.save_pretrained(tmp_path / "cloud")
    backend = cloud.load_backend(str(tmp_path / "cloud"))
    ids = [5, 6, 7]
    assert backend.vocab_size == llm.vocab_size
    assert backend.forward(ids, None)[0].allclose(llm.forward(ids, None)[0], atol=1e-5)
    assert cloud.load_backend(llm) is llm
    with pytest.raises(InvalidInputError):
        cloud.load_backend(str(tmp_path / "missing"))


def test_run_server_reports_a_port_in_use(llm) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(ConfigurationError, match="cannot listen"):
            cloud.run_server(llm, port=port)
