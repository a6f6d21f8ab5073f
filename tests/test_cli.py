"""The ``specsteer`` command line, driven through typer's ``CliRunner``.

Every test runs under its own ``$SPECSTEER_HOME`` (see ``conftest.py``): the memory commands work
on the real store there (the bundled MiniLM embedder, as ``specsteer memory`` uses it), and the
audit commands on the log a real generation with tiny models wrote there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from specsteer._cli import app

runner = CliRunner()


def invoke(*args: str, input: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=input)


def flat(text: str) -> str:
    """The output with all runs of whitespace made one space (rich wraps at 80 columns)."""
    return " ".join(text.split())


def assert_no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )


# -- help ------------------------------------------------------------------------------------

HELP = [
    ((), "Private, personalized generation"),
    (("generate",), "Answer one request with the embedded default models"),
    (("chat",), "Chat interactively"),
    (("demo",), "Run the embedded demo"),
    (("bench",), "Benchmark every method side by side"),
    (("serve",), "Serve a cloud model for verification"),
    (("web",), "Open the web app"),
    (("memory",), "Manage a user's private, encrypted memories"),
    (("memory", "add"), "Store memories"),
    (("memory", "search"), "Search a user's memories by meaning"),
    (("memory", "list"), "List a user's memories"),
    (("memory", "forget"), "Forget a user: destroy their key"),
    (("memory", "export"), "Export a user's memories to JSONL"),
    (("memory", "import"), "Import memories from a JSONL export"),
    (("persona",), "Who you are when you write"),
    (("persona", "show"), "Show the persona in use"),
    (("persona", "set"), "Set your name, sign-off or people"),
    (("persona", "drop"), "Remove someone from your persona"),
    (("persona", "keep"), "Keep what was inferred as set"),
    (("persona", "clear"), "Remove what you set"),
    (("audit",), "Inspect the tamper-evident log"),
    (("audit", "show"), "Show the newest audit records"),
    (("audit", "verify"), "Check the HMAC chain, signed checkpoints"),
    (("audit", "export"), "Export the log, checkpoints, public key"),
]


@pytest.mark.parametrize(("command", "purpose"), HELP, ids=[" ".join(c) or "top" for c, _ in HELP])
def test_help_names_the_purpose(command: tuple[str, ...], purpose: str) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    out = flat(result.output)
    assert f"Usage: specsteer {' '.join(command)}".rstrip() in out
    assert purpose in out


@pytest.mark.parametrize(
    ("group", "commands"),
    [
        ((), ("generate", "chat", "demo", "bench", "serve", "web", "memory", "persona", "audit")),
        (("memory",), ("add", "search", "list", "forget", "export", "import")),
        (("persona",), ("show", "set", "drop", "keep", "clear")),
        (("audit",), ("show", "verify", "export", "protect")),
    ],
    ids=["top", "memory", "persona", "audit"],
)
def test_help_lists_every_command(group: tuple[str, ...], commands: Sequence[str]) -> None:
    result = invoke(*group, "--help")
    assert result.exit_code == 0
    listed = {line.strip("│ ").split(" ")[0] for line in result.output.splitlines()}
    assert set(commands) <= listed


def test_an_unknown_command_is_a_usage_error() -> None:
    result = invoke("memory", "frobnicate")
    assert result.exit_code == 2
    assert "No such command" in result.output
    assert_no_traceback(result)


# -- memory ----------------------------------------------------------------------------------

PIZZA = "i love pizza with olives on friday nights"
DOG = "my dog rex is afraid of thunderstorms"


def memory_table(user: str) -> str:
    result = invoke("memory", "list", "--user", user)
    assert result.exit_code == 0, result.output
    return flat(result.output)


def test_memory_end_to_end(tmp_path: Path) -> None:
    added = invoke("memory", "add", PIZZA, DOG, "--user", "maya")
    assert added.exit_code == 0, added.output
    assert added.output.count("stored ") == 2

    listed = memory_table("maya")
    assert "2 memories of 'maya'" in listed
    assert PIZZA in listed and DOG in listed
    # Another user sees none of them.
    other = memory_table("sam")
    assert "0 memories of 'sam'" in other and PIZZA not in other

    hits = invoke("memory", "search", "what food do i like", "--user", "maya", "--k", "1")
    assert hits.exit_code == 0, hits.output
    assert PIZZA in flat(hits.output) and DOG not in flat(hits.output)

    dump = tmp_path / "maya.jsonl"
    exported = invoke("memory", "export", str(dump), "--user", "maya")
    assert exported.exit_code == 0, exported.output
    assert "exported 2 memories" in exported.output
    lines = dump.read_text().splitlines()
    assert sorted(json.loads(line)["text"] for line in lines[1:]) == sorted([DOG, PIZZA])

    forgot = invoke("memory", "forget", "--user", "maya", "--yes")
    assert forgot.exit_code == 0, forgot.output
    assert "forgot 'maya'" in forgot.output
    listed = memory_table("maya")
    assert "0 memories of 'maya'" in listed and PIZZA not in listed

    # A forgotten user is not written by accident; the error says how to do it on purpose.
    refused = invoke("memory", "import", str(dump), "--user", "maya")
    assert refused.exit_code == 2
    assert "error:" in refused.output and "--reinstate" in flat(refused.output)
    assert_no_traceback(refused)
    assert "0 memories of 'maya'" in memory_table("maya")

    restored = invoke("memory", "import", str(dump), "--user", "maya", "--reinstate")
    assert restored.exit_code == 0, restored.output
    assert "imported 2 memories" in restored.output
    listed = memory_table("maya")
    assert "2 memories of 'maya'" in listed
    assert PIZZA in listed and DOG in listed
    hits = invoke("memory", "search", "my pet", "--user", "maya", "--k", "1")
    assert hits.exit_code == 0 and DOG in flat(hits.output)


def persona_rows(result: Result) -> dict[str, str]:
    """``what -> "value | source"`` of the persona table the command printed."""
    assert result.exit_code == 0, result.output
    rows: dict[str, str] = {}
    for line in result.output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 3 and cells[0] and cells[0] != "what":
            rows[cells[0]] = f"{cells[1]} | {cells[2]}"
    return rows


def test_persona_end_to_end() -> None:
    added = invoke(
        "memory",
        "add",
        "My sister Lena lives in Lisbon.",
        "Thanks!\nCheers,\nInes",
        "--user",
        "ines",
    )
    assert added.exit_code == 0, added.output
    shown = persona_rows(invoke("persona", "show", "--user", "ines"))
    assert shown["name"].startswith("Ines | inferred (memory ")
    assert shown["sign-off"].startswith("Cheers, Ines | inferred")
    assert shown["sister"].startswith("Lena | inferred")

    changed = invoke(
        "persona", "set", "--user", "ines", "--name", "Inês Duarte", "--person", "landlord=Mr Costa"
    )
    rows = persona_rows(changed)
    assert rows["name"] == "Inês Duarte | set"
    assert rows["landlord"] == "Mr Costa | set" and rows["sister"].startswith("Lena | inferred")
    dropped = persona_rows(invoke("persona", "drop", "Lena", "--user", "ines"))
    assert "sister" not in dropped and dropped["hidden"] == "Lena | set (not used)"
    kept = persona_rows(invoke("persona", "keep", "--user", "ines"))
    assert kept["sign-off"] == "Cheers, Ines | set"
    cleared = persona_rows(invoke("persona", "clear", "--user", "ines"))
    assert cleared["name"].startswith("Ines | inferred") and cleared["sister"].startswith("Lena")
    assert persona_rows(invoke("persona", "show", "--user", "nobody")) == {
        "name": "- | -",
        "sign-off": "- | -",
    }


@pytest.mark.parametrize("person", ["Lena", "=Lena", "sister="])
def test_persona_set_refuses_a_bad_person(person: str) -> None:
    result = invoke("persona", "set", "--user", "ines", "--person", person)
    assert result.exit_code == 2
    assert "RELATION=NAME" in flat(result.output)
    assert_no_traceback(result)


def test_memory_forget_asks_first() -> None:
    assert invoke("memory", "add", PIZZA, "--user", "maya").exit_code == 0

    # Non-interactive (stdin closed, no answer): an error line, exit 2, nothing forgotten.
    silent = invoke("memory", "forget", "--user", "maya")
    assert silent.exit_code == 2
    out = flat(silent.output)
    assert "error:" in out and "nothing was forgotten" in out and "--yes" in out
    assert_no_traceback(silent)
    assert PIZZA in memory_table("maya")

    declined = invoke("memory", "forget", "--user", "maya", input="n\n")
    assert declined.exit_code == 1
    assert "nothing was forgotten" in declined.output
    assert PIZZA in memory_table("maya")

    accepted = invoke("memory", "forget", "--user", "maya", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert PIZZA not in memory_table("maya")


def test_memory_forget_needs_a_user() -> None:
    result = invoke("memory", "forget", "--yes")
    assert result.exit_code == 2
    assert "Missing option '--user'" in result.output


def test_memory_add_for_a_forgotten_user_needs_reinstate() -> None:
    assert invoke("memory", "add", DOG, "--user", "maya").exit_code == 0
    assert invoke("memory", "forget", "--user", "maya", "--yes").exit_code == 0
    refused = invoke("memory", "add", PIZZA, "--user", "maya")
    assert refused.exit_code == 2
    assert "error:" in refused.output and "--reinstate" in flat(refused.output)
    assert_no_traceback(refused)
    added = invoke("memory", "add", PIZZA, "--user", "maya", "--reinstate")
    assert added.exit_code == 0, added.output
    assert PIZZA in memory_table("maya")

    # On a user who is not forgotten, --reinstate changes nothing: their memories stay readable.
    again = invoke("memory", "add", DOG, "--user", "maya", "--reinstate")
    assert again.exit_code == 0, again.output
    listed = memory_table("maya")
    assert "2 memories of 'maya'" in listed and PIZZA in listed and DOG in listed


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "cannot read export file"), ("not json\n", "is not a specsteer memory export")],
    ids=["missing", "not-an-export"],
)
def test_memory_import_of_a_bad_file_is_an_error_line(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    path = tmp_path / "in.jsonl"
    if content is not None:
        path.write_text(content)
    result = invoke("memory", "import", str(path), "--user", "maya")
    assert result.exit_code == 2
    out = flat(result.output)
    assert out.startswith("error:") and problem in out
    assert_no_traceback(result)


# -- audit -----------------------------------------------------------------------------------


@pytest.fixture
def audit_log(specsteer_home: Path) -> tuple[Path, list[bytes]]:
    """The log under $SPECSTEER_HOME after a real generation, and the payloads it recorded."""
    from specsteer import Assistant
    from specsteer.privacy import AuditLog
    from specsteer.testing import tiny_backend

    assistant = Assistant.in_process(tiny_backend(0), tiny_backend(1))
    result = assistant.generate(
        "what is my plan for friday ?", context="dinner in rome", max_new_tokens=8
    )
    log = AuditLog()
    payloads = [log.read_payload(r) for r in log.records()]
    assert result.privacy is not None and result.privacy.payloads == len(payloads) >= 2
    assert log.path.is_relative_to(specsteer_home)
    return log.path, [p for p in payloads if p is not None]


def test_audit_show(audit_log: tuple[Path, list[bytes]]) -> None:
    path, payloads = audit_log
    shown = invoke("audit", "show", "--last", "0")
    assert shown.exit_code == 0, shown.output
    assert f"{len(payloads)} records, showing {len(payloads)}" in shown.output
    assert "-> in-process VerifyRequest" in shown.output
    # Each payload prints as the exact bytes that left (not broken at the console width).
    for payload in payloads:
        assert payload.decode() in shown.output

    newest = invoke("audit", "show", "--last", "1", "--no-payloads", "--log", str(path))
    assert newest.exit_code == 0, newest.output
    assert f"{len(payloads)} records, showing 1" in newest.output
    assert f"#{len(payloads)} " in newest.output and "#1 " not in newest.output
    assert payloads[-1].decode() not in newest.output


def test_audit_verify_and_export(audit_log: tuple[Path, list[bytes]], tmp_path: Path) -> None:
    n = len(audit_log[1])
    verified = invoke("audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert verified.output.startswith(f"ok: {n} records, {n} signed checkpoints, HMAC chain")

    bundle = tmp_path / "bundle"
    exported = invoke("audit", "export", str(bundle))
    assert exported.exit_code == 0, exported.output
    assert "exported to" in exported.output
    names = {p.name for p in bundle.iterdir()}
    assert {"audit.jsonl", "audit.jsonl.checkpoints", "public_key.pem", "verify.json"} <= names
    report = json.loads((bundle / "verify.json").read_text())
    assert report["ok"] is True and report["records"] == n
    assert (bundle / "audit.jsonl").read_bytes() == audit_log[0].read_bytes()

    # An outside auditor checks the bundle with the public key alone.
    auditor = invoke(
        "audit", "verify", "--log", str(bundle / "audit.jsonl"),
        "--public-key", str(bundle / "public_key.pem"),
    )  # fmt: skip
    assert auditor.exit_code == 0, auditor.output
    assert f"ok: {n} records" in auditor.output and "no audit key" in auditor.output


def flip_one_byte(path: Path, record: int) -> None:
    """Change one letter inside record ``record``'s payload (the line stays valid JSON)."""
    data = bytearray(path.read_bytes())
    start = 0
    for _ in range(record - 1):
        start = data.index(b"\n", start) + 1
    at = data.index(b"friday", data.index(b'"payload": ', start))
    assert at < data.index(b"\n", start)
    data[at] = ord("g")
    path.write_bytes(bytes(data))
    json.loads(path.read_bytes().splitlines()[record - 1])


def test_audit_verify_reports_tampering(
    audit_log: tuple[Path, list[bytes]], tmp_path: Path
) -> None:
    path, _ = audit_log
    flip_one_byte(path, record=2)

    result = invoke("audit", "verify")
    assert result.exit_code == 1
    out = flat(result.output)
    assert out.startswith("FAILED at record 2:")
    assert "HMAC mismatch: the record was altered" in out
    assert_no_traceback(result)

    # The auditor's bundle of the altered log says so too.
    bundle = tmp_path / "bundle"
    assert invoke("audit", "export", str(bundle)).exit_code == 0
    report = json.loads((bundle / "verify.json").read_text())
    assert report["ok"] is False and report["problems"][0]["seq"] == 2
    auditor = invoke(
        "audit", "verify", "--log", str(bundle / "audit.jsonl"),
        "--public-key", str(bundle / "public_key.pem"),
    )  # fmt: skip
    assert auditor.exit_code == 1
    assert "FAILED at record 2" in flat(auditor.output)


def test_audit_verify_of_an_empty_state_root_says_there_is_no_log_yet() -> None:
    result = invoke("audit", "verify")
    assert result.exit_code == 2, result.output
    assert "no audit log yet" in flat(result.output)
    assert_no_traceback(result)


# -- across a real boundary ------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sent(home: Path) -> tuple[set[object], list[dict[str, object]]]:
    """The model names asked for, and the payloads an audit log recorded without the fields that
    differ per run (the request id) or per route (the model name, and the link to the last
    receipt, which only a served cloud signs)."""
    from specsteer.privacy import AuditLog, Keyring

    log = AuditLog(home / "audit" / "audit.jsonl", keyring=Keyring(home / "keys"))
    assert log.verify().ok
    out, models = [], set()
    for record in log.records():
        payload = json.loads(log.read_payload(record) or b"{}")
        payload.pop("request_id")
        payload.pop("receipt_prev", None)
        models.add(payload.pop("model"))
        out.append(payload)
    return models, out


GENERATE = ("generate", "what is my plan for friday ?", "--context", "dinner in rome", "--tiny")
GENERATE_ARGS = ("--seed", "3", "--max-new-tokens", "12", "--json")


def test_generate_against_a_served_cloud_matches_the_in_process_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`specsteer serve` and `specsteer generate --cloud` as two processes on 127.0.0.1: the same
    answer, and the same payloads in the audit log, as the run with the cloud in process."""
    import os
    import subprocess
    import sys

    import torch

    local_home, remote_home = tmp_path / "local", tmp_path / "remote"
    monkeypatch.setenv("SPECSTEER_HOME", str(local_home))
    monkeypatch.setenv("SPECSTEER_SERVER_TOKEN", "s3cret")  # read by `generate --cloud` too
    # Both sides compute on one thread, as the two processes do: a matrix product split over
    # another number of threads rounds differently, and tiny models have near-ties.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = invoke(*GENERATE, *GENERATE_ARGS)
    finally:
        torch.set_num_threads(threads)
    assert local.exit_code == 0, local.output

    exe = [sys.executable, "-c", "from specsteer._cli import main; main()"]
    env = {**os.environ, "SPECSTEER_HOME": str(remote_home), "OMP_NUM_THREADS": "1"}
    port = _free_port()
    server = subprocess.Popen(
        [*exe, "serve", "--tiny", "--port", str(port)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{port}"
        assert server.stdout.readline().strip() == f"specsteer cloud server: {url}"
        args = ["--cloud", url, "--cloud-model", "tiny-1"]
        remote = subprocess.run(
            [*exe, *GENERATE, *GENERATE_ARGS, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert remote.returncode == 0, remote.stderr
        wrong = invoke(*GENERATE, "--cloud", url, "--cloud-model", "qwen")
    finally:
        server.terminate()
        server.wait(timeout=30)

    got, want = json.loads(remote.stdout), json.loads(local.output)
    assert got["text"] == want["text"] and got["text"]
    assert got["stats"]["rounds"] == want["stats"]["rounds"]
    assert got["privacy"]["destinations"] == [url]
    (remote_models, remote_sent), (local_models, local_sent) = _sent(remote_home), _sent(local_home)
    assert remote_sent == local_sent != []
    assert remote_models == {"tiny-1"} and local_models == {"default"}
    assert wrong.exit_code == 2 and "serves 'tiny-1', not 'qwen'" in flat(wrong.output)
    assert_no_traceback(wrong)


def test_web_refuses_a_public_address_without_allow_remote() -> None:
    result = invoke("web", "--tiny", "--host", "0.0.0.0")
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in flat(result.output)
    assert_no_traceback(result)


# -- bench -----------------------------------------------------------------------------------


def test_bench_quick_writes_its_tables_and_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "bench.md"
    args = ("bench", "--quick", "--tiny", "--rtt", "0", "--lam", "0.1", "--output", str(out))
    args += ("--length", "8", "--length", "12", "-k", "3")
    monkeypatch.setattr("sys.argv", ["specsteer", *args])  # the command line the doc records
    result = invoke(*args)
    assert_no_traceback(result)
    assert result.exit_code == 0, result.output
    doc = out.read_text()
    assert "specsteer bench --quick --tiny" in doc
    assert "| specsteer λ=0.1 |" in doc and "ms/token @ 12" in doc
    assert "'K': 3" in doc


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--lam", "-1"), "--lam must be > 0"),
        (("--length", "1"), "--length must be at least 2"),
    ],
)
def test_bench_refuses_bad_grids_with_a_message(args: tuple[str, ...], message: str) -> None:
    result = invoke("bench", "--quick", "--tiny", *args)
    assert_no_traceback(result)
    assert result.exit_code != 0
    assert message in flat(result.output)


def test_serve_refuses_a_token_on_the_command_line() -> None:
    result = invoke("serve", "--tiny", "--token", "s3cret")
    assert result.exit_code == 2
    assert "process list" in flat(result.output) and "--token-file" in flat(result.output)
    assert "s3cret" not in result.output


def test_generate_keeps_high_lift_tokens_on_the_device_when_asked() -> None:
    """--max-context-lift sets the guard's context-lift policy: at 0 nats every token the context
    made likelier stays on the device, and the report counts them; at 'inf' none is kept."""
    counts = []
    for extra in (("--max-context-lift", "inf"), ("--max-context-lift", "0")):
        result = invoke(*GENERATE, *GENERATE_ARGS, *extra)
        assert result.exit_code == 0, result.output
        counts.append(json.loads(result.output)["privacy"]["tokens_kept_for_lift"])
    assert counts[0] == 0 and counts[1] > 0


def test_a_negative_context_lift_is_refused() -> None:
    result = invoke(*GENERATE, "--max-context-lift", "-1")
    assert result.exit_code == 2 and "--max-context-lift" in flat(result.output)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--method", "bogus"), "method: unknown method 'bogus'"),
        (("--beta", "1000"), "beta: Input should be less than or equal to 100"),
        (("--user", "../x"), "invalid user id"),
    ],
)
def test_generate_refuses_bad_settings_before_loading_models(
    args: tuple[str, ...], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(**_: object) -> None:
        raise AssertionError("the models were loaded")

    monkeypatch.setattr("specsteer.apps._assistants.build_assistant", never)
    result = invoke("generate", "hi", "--tiny", *args)
    assert result.exit_code == 2 and message in flat(result.output), result.output
    assert "errors.pydantic.dev" not in result.output
    assert_no_traceback(result)


def test_eval_into_a_file_is_an_error_line(tmp_path: Path) -> None:
    taken = tmp_path / "results"
    taken.write_text("not a folder")
    result = invoke("eval", "--tiny", "--limit", "1", "--out", str(taken))
    assert result.exit_code == 2 and "name a folder" in flat(result.output)
    assert taken.read_text() == "not a folder"
    assert_no_traceback(result)


def test_forgetting_a_user_the_store_never_held_changes_nothing() -> None:
    result = invoke("memory", "forget", "--user", "nobody", "--yes")
    assert result.exit_code == 2 and "no user 'nobody'" in flat(result.output)
    assert_no_traceback(result)
    assert invoke("memory", "add", PIZZA, "--user", "nobody").exit_code == 0  # not blocked


def test_persona_drop_of_a_stranger_is_an_error_line() -> None:
    assert invoke("persona", "set", "--user", "ines", "--person", "sister=Lena").exit_code == 0
    result = invoke("persona", "drop", "Nobody", "--user", "ines")
    assert result.exit_code == 2 and "nobody called 'Nobody'" in flat(result.output)
    assert_no_traceback(result)
    dropped = invoke("persona", "drop", "Lena", "--user", "ines")
    assert dropped.exit_code == 0 and "Lena" not in dropped.output.split("hidden")[0]
