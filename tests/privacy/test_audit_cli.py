"""``specsteer audit show|verify|export`` on bad paths and files, and on a protected signing key.

Every bad path ends in one ``error:`` line naming the file and the fix (exit 2), never a
traceback; reading and verifying a log never needs the signing key's passphrase.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from specsteer._cli import app
from specsteer.privacy import AuditLog, Keyring, WrongPassphraseError
from specsteer.privacy._keyring import SIGNING_PASSPHRASE_ENV

runner = CliRunner()


def invoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def flat(text: str) -> str:
    """The output with all runs of whitespace made one space (rich wraps at 80 columns)."""
    return " ".join(text.split())


def squeezed(text: str) -> str:
    """The text without whitespace: rich may wrap a long path in the middle."""
    return "".join(text.split())


def assert_error_line(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert flat(result.output).startswith("error:"), result.output
    assert "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert squeezed(fragment) in squeezed(result.output), result.output


def _fill(log: AuditLog, n: int) -> None:
    for _ in range(n):
        log.append(destination="cloud", payload=b'{"draft": "word"}', payload_type="Req")


@pytest.fixture
def log() -> AuditLog:
    log = AuditLog()
    _fill(log, 3)
    return log


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# Each case: the arguments after `audit` (built in tmp_path), and what the error line says.
BAD_PATHS: dict[str, Callable[[Path], tuple[list[str | Path], list[str]]]] = {
    "verify --log FOLDER": lambda t: (
        ["verify", "--log", t],
        [f"{t} is a folder, not an audit log", "--log"],
    ),
    "show --log FOLDER": lambda t: (["show", "--log", t], [f"{t} is a folder, not an audit log"]),
    "show --log NOT-JSON": lambda t: (
        ["show", "--log", _file(t, "notes.txt", b"hello\n")],
        [f"line 1 of {t / 'notes.txt'} is not a JSON audit record", "audit verify"],
    ),
    "verify --witness MISSING": lambda t: (
        ["verify", "--witness", t / "gone.json"],
        [f"no witness at {t / 'gone.json'}", "export_checkpoint"],
    ),
    "verify --witness NOT-JSON": lambda t: (
        ["verify", "--witness", _file(t, "w.json", b"{not json\n")],
        [f"line 1 of the witness {t / 'w.json'} is not JSON", "export_checkpoint"],
    ),
    "verify --witness NOT-UTF-8": lambda t: (
        ["verify", "--witness", _file(t, "w.json", b'{"seq": "\xff"}')],
        [f"the witness {t / 'w.json'} is not UTF-8 text", "export_checkpoint"],
    ),
    "verify --witness EMPTY": lambda t: (
        ["verify", "--witness", _file(t, "w.json", b"")],
        [f"the witness {t / 'w.json'} holds no checkpoints"],
    ),
    "verify --public-key MISSING": lambda t: (
        ["verify", "--public-key", t / "missing.pem"],
        [f"no public key at {t / 'missing.pem'}", "public_key.pem"],
    ),
    "verify --public-key NOT-PEM": lambda t: (
        ["verify", "--public-key", _file(t, "k.pem", b"hello")],
        [f"{t / 'k.pem'} is not an Ed25519 public key in PEM form", "public_key.pem"],
    ),
    "verify --last-receipt NOT-JSON": lambda t: (
        ["verify", "--last-receipt", _file(t, "r.json", b"bad")],
        [f"the last receipt {t / 'r.json'} is not JSON", "one JSON object"],
    ),
    "export FILE": lambda t: (
        ["export", _file(t, "taken", b"a file")],
        [f"{t / 'taken'} is a file; pass a folder"],
    ),
    "export UNDER-A-FILE": lambda t: (
        ["export", _file(t, "taken", b"a file") / "bundle"],
        [f"cannot use {t / 'taken' / 'bundle'}: Not a directory", "permissions"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_PATHS))
def test_a_bad_path_is_one_error_line(case: str, log: AuditLog, tmp_path: Path) -> None:
    args, fragments = BAD_PATHS[case](tmp_path)
    assert_error_line(invoke("audit", *args), *fragments)


@pytest.mark.parametrize("command", ["verify", "show", "export"])
def test_a_log_given_that_does_not_exist_is_an_error(
    command: str, log: AuditLog, tmp_path: Path
) -> None:
    typo = tmp_path / "nowhere" / "typo.jsonl"
    args = ["export", tmp_path / "bundle", "--log", typo] if command == "export" else [command]
    result = invoke("audit", *args, *([] if command == "export" else ["--log", typo]))
    assert_error_line(result, f"no audit log at {typo}", "--log")
    assert not typo.parent.exists()  # reading made nothing


def test_a_fresh_state_root_has_no_log_yet(specsteer_home: Path, tmp_path: Path) -> None:
    shown = invoke("audit", "show")
    assert shown.exit_code == 0, shown.output
    assert squeezed(shown.output).startswith(
        squeezed(f"no audit log yet at {AuditLog.default_path()}")
    )
    assert_error_line(invoke("audit", "verify"), "no audit log yet at", "nothing to verify")
    assert_error_line(invoke("audit", "export", tmp_path / "b"), "no audit log yet at")
    assert not any(specsteer_home.glob("*/*"))  # reading made no log and no keys


def test_reading_a_protected_log_needs_only_the_public_key(
    log: AuditLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Keyring().protect_signing_key("correct horse")
    monkeypatch.delenv(SIGNING_PASSPHRASE_ENV, raising=False)

    verified = invoke("audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert verified.output.startswith("ok: 3 records, 3 signed checkpoints, HMAC chain intact")
    shown = invoke("audit", "show")
    assert shown.exit_code == 0 and "3 records, showing 3" in shown.output, shown.output
    exported = invoke("audit", "export", tmp_path / "bundle")
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "bundle" / "public_key.pem").read_text() == log.public_key_pem()
    assert json.loads((tmp_path / "bundle" / "verify.json").read_text())["ok"] is True

    def unseal(*_: object) -> None:
        raise AssertionError("the signing key was unsealed to read the log")

    with monkeypatch.context() as m:  # with the passphrase at hand, reading leaves it sealed
        m.setenv(SIGNING_PASSPHRASE_ENV, "correct horse")
        m.setattr(Keyring, "signing_key", unseal)
        assert invoke("audit", "verify").exit_code == 0
    with pytest.raises(WrongPassphraseError, match=SIGNING_PASSPHRASE_ENV):
        AuditLog()  # a session that writes the log still needs it
