"""The local keyring: one AES-256 data key per user, the audit HMAC key, the audit signing key.

Layout under ``root`` (default ``specsteer_home() / "keys"``, mode 0700; every file 0600)::

    keyring.json            format and protection: "none", or "scrypt" with salt, cost, check blob
    audit.key               HMAC-SHA256 key for the audit chain
    audit-seal.key          AES key for sealed payload copies in the audit log
    signing.key             Ed25519 private key for audit checkpoints
    users/<id>.key          the user's data key versions (JSON)
    users/<id>.forgotten    tombstone left by destroy()

With a passphrase, each key is stored sealed (AES-GCM) under a key-encryption key derived with
scrypt, so a copied key folder is useless without the passphrase. Without one, keys rely on file
permissions only, like an SSH private key without a passphrase.

**Rotation.** :meth:`Keyring.rotate` adds a new version and makes it current; older versions stay
so ciphertext sealed before the rotation still opens (:meth:`Keyring.data_keys` lists them newest
first, :func:`open_sealed_any` tries them). After re-encrypting, call
:meth:`Keyring.retire_old_keys` to drop the old versions for good.

**Destruction (crypto-shredding).** :meth:`Keyring.destroy` writes a tombstone, overwrites the key
file and unlinks it. Every version goes, so all data sealed for that user becomes unreadable,
wherever copies of the ciphertext survive. The tombstone stops a later call from silently making
a fresh key for a forgotten id; :meth:`Keyring.forget_tombstone` lifts it deliberately. On
copy-on-write file systems or SSDs the overwritten blocks may survive on the medium; use a
passphrase if that matters, so a recovered key file is still sealed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from specsteer._errors import InvalidInputError
from specsteer._home import specsteer_home
from specsteer.privacy._exceptions import (
    DecryptionError,
    KeyDestroyedError,
    KeyNotFoundError,
    KeyringCorruptedError,
    WrongPassphraseError,
)
from specsteer.privacy._seal import KEY_BYTES, open_sealed, seal

__all__ = ["Keyring", "validate_user_id"]

_FORMAT = 1
_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*")
_MAX_USER_ID = 128
# scrypt cost: N=2**15, r=8 needs 32 MiB and ~0.1 s; stored in keyring.json so it can change.
_SCRYPT_N = 2**15
_SCRYPT_R = 8
_SCRYPT_P = 1
_CHECK_PLAINTEXT = b"specsteer keyring passphrase check"


def validate_user_id(user_id: str) -> str:
    """Check that a user id is safe to use as a file name and a record key.

    Rules: a non-empty string of at most 128 characters from ``A-Z a-z 0-9 . _ @ + -``, starting
    with a letter or digit.

    Args:
        user_id: The id to check.

    Returns:
        The id, unchanged.

    Raises:
        InvalidInputError: The id breaks a rule; the message names it.
    """
    if not isinstance(user_id, str) or not user_id:
        raise InvalidInputError("invalid user id: it must be a non-empty string")
    if len(user_id) > _MAX_USER_ID:
        raise InvalidInputError(f"invalid user id: at most {_MAX_USER_ID} characters")
    if not _USER_ID.fullmatch(user_id):
        raise InvalidInputError(
            "invalid user id: use only letters, digits and . _ @ + - , starting with a letter or digit"
        )
    return user_id


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64 text")
    return base64.b64decode(text.encode("ascii"), validate=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` atomically to ``path`` with mode 0600 (temp file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class Keyring:
    """Key material for one device, under one folder.

    Thread-safe: one lock guards every read and write. Separate processes may share a folder;
    every write is atomic (temp file + rename), though two processes rotating the same user at the
    same moment may lose one rotation.

    Args:
        root: The key folder; default ``specsteer_home() / "keys"``.
        passphrase: Protects every key with a scrypt-derived key-encryption key. Must be given
            on every later open of a keyring created with one, and never for one created
            without.

    Raises:
        WrongPassphraseError: The passphrase is wrong, missing, or not expected.
        KeyringCorruptedError: ``keyring.json`` is unreadable.
    """

    def __init__(self, root: str | Path | None = None, *, passphrase: str | None = None) -> None:
        self._root = Path(root) if root is not None else specsteer_home() / "keys"
        self._users = self._root / "users"
        self._lock = threading.RLock()
        self._cache: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._users.mkdir(exist_ok=True, mode=0o700)
        os.chmod(self._root, 0o700)
        os.chmod(self._users, 0o700)
        if passphrase is not None and not passphrase:
            raise InvalidInputError("passphrase must be non-empty (or None for no passphrase)")
        with self._lock:
            self._kek = self._open_meta(passphrase)

    @property
    def root(self) -> Path:
        """The key folder."""
        return self._root

    @property
    def protected(self) -> bool:
        """Whether keys are sealed under a passphrase."""
        return self._kek is not None

    # -- meta / passphrase -------------------------------------------------------------------

    def _open_meta(self, passphrase: str | None) -> bytes | None:
        meta_path = self._root / "keyring.json"
        if not meta_path.exists():
            return self._create_meta(meta_path, passphrase)
        meta = self._load_json(meta_path)
        try:
            protection = meta["protection"]
            if meta.get("format") != _FORMAT:
                raise ValueError(f"unknown format {meta.get('format')!r}")
            if protection == "none":
                if passphrase is not None:
                    raise WrongPassphraseError(
                        f"the keyring at {self._root} was created without a passphrase; "
                        "open it with passphrase=None"
                    )
                return None
            if protection != "scrypt":
                raise ValueError(f"unknown protection {protection!r}")
            salt = _unb64(meta["salt"])
            n, r, p = int(meta["n"]), int(meta["r"]), int(meta["p"])
            check = _unb64(meta["check"])
        except (KeyError, ValueError, TypeError) as e:
            raise self._corrupted(meta_path, e) from e
        if passphrase is None:
            raise WrongPassphraseError(
                f"the keyring at {self._root} is protected by a passphrase; pass passphrase=..."
            )
        kek = Scrypt(salt=salt, length=KEY_BYTES, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))
        try:
            if open_sealed(kek, check, b"specsteer-keyring-check") != _CHECK_PLAINTEXT:
                raise DecryptionError("check mismatch")
        except DecryptionError as e:
            raise WrongPassphraseError(
                f"wrong passphrase for the keyring at {self._root}; retry with the passphrase "
                "it was created with"
            ) from e
        return kek

    def _create_meta(self, meta_path: Path, passphrase: str | None) -> bytes | None:
        if passphrase is None:
            meta: dict[str, Any] = {"format": _FORMAT, "protection": "none"}
            kek = None
        else:
            salt = os.urandom(16)
            kek = Scrypt(salt=salt, length=KEY_BYTES, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P).derive(
                passphrase.encode("utf-8")
            )
            meta = {
                "format": _FORMAT,
                "protection": "scrypt",
                "salt": _b64(salt),
                "n": _SCRYPT_N,
                "r": _SCRYPT_R,
                "p": _SCRYPT_P,
                "check": _b64(seal(kek, _CHECK_PLAINTEXT, b"specsteer-keyring-check")),
            }
        _write_private(meta_path, json.dumps(meta, sort_keys=True).encode("utf-8"))
        return kek

    # -- low-level file helpers --------------------------------------------------------------

    def _corrupted(self, path: Path, cause: object) -> KeyringCorruptedError:
        return KeyringCorruptedError(
            f"key file {path} is unreadable ({type(cause).__name__}); restore it from a backup. "
            "Without one, the data sealed with it is lost: delete the file (for a user key, "
            "call Keyring.destroy(user_id)) and start again"
        )

    def _load_json(self, path: Path) -> dict[str, Any]:
        try:
            raw = path.read_bytes()
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise self._corrupted(path, e) from e
        if not isinstance(data, dict):
            raise self._corrupted(path, TypeError("not a JSON object"))
        return data

    def _wrap(self, name: str, key: bytes) -> str:
        if self._kek is None:
            return _b64(key)
        return _b64(seal(self._kek, key, f"specsteer-keyring:{name}".encode()))

    def _unwrap(self, path: Path, name: str, stored: object) -> bytes:
        try:
            raw = _unb64(stored)
            key = (
                raw
                if self._kek is None
                else open_sealed(self._kek, raw, f"specsteer-keyring:{name}".encode())
            )
        except (ValueError, DecryptionError) as e:
            raise self._corrupted(path, e) from e
        if len(key) != KEY_BYTES:
            raise self._corrupted(path, ValueError("wrong key length"))
        return key

    # -- user data keys ----------------------------------------------------------------------

    def _user_paths(self, user_id: str) -> tuple[Path, Path]:
        validate_user_id(user_id)
        return self._users / f"{user_id}.key", self._users / f"{user_id}.forgotten"

    def _read_user(self, user_id: str, path: Path) -> dict[str, Any] | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            self._cache.pop(user_id, None)
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        doc = self._load_json(path)
        try:
            versions = doc["versions"]
            current = int(doc["current"])
            if doc.get("user_id") != user_id or not isinstance(versions, dict):
                raise ValueError("user id or versions mismatch")
            keys = {
                int(v): self._unwrap(path, f"data:{user_id}:{int(v)}", k)
                for v, k in versions.items()
            }
            if current not in keys:
                raise ValueError("current version missing")
        except (KeyError, ValueError, TypeError) as e:
            raise self._corrupted(path, e) from e
        parsed: dict[str, Any] = {"current": current, "keys": keys}
        self._cache[user_id] = (stamp, parsed)
        return parsed

    def _write_user(self, user_id: str, path: Path, keys: dict[int, bytes], current: int) -> None:
        doc = {
            "format": _FORMAT,
            "user_id": user_id,
            "current": current,
            "versions": {str(v): self._wrap(f"data:{user_id}:{v}", k) for v, k in keys.items()},
        }
        _write_private(path, json.dumps(doc, sort_keys=True).encode("utf-8"))
        self._cache.pop(user_id, None)

    def data_key(self, user_id: str, *, create: bool = True, recreate: bool = False) -> bytes:
        """Return the user's current 32-byte AES-256-GCM data key.

        Args:
            user_id: The user (see :func:`validate_user_id` for the rules).
            create: Make a key when the user has none.
            recreate: For a forgotten user, lift the tombstone and make a fresh key (the old
                data stays unreadable).

        Returns:
            The current key; use it with :func:`seal` / :func:`open_sealed`.

        Raises:
            InvalidInputError: Bad user id.
            KeyDestroyedError: The user was forgotten (and ``recreate`` is false).
            KeyNotFoundError: No key and ``create`` is false.
            KeyringCorruptedError: The key file is unreadable.
        """
        path, tomb = self._user_paths(user_id)
        with self._lock:
            if tomb.exists():
                if not recreate:
                    raise KeyDestroyedError(user_id)
                self._finish_destroy(path)
                tomb.unlink()
            doc = self._read_user(user_id, path)
            if doc is not None:
                keys: dict[int, bytes] = doc["keys"]
                return keys[doc["current"]]
            if not (create or recreate):
                raise KeyNotFoundError(user_id)
            key = os.urandom(KEY_BYTES)
            self._write_user(user_id, path, {1: key}, 1)
            return key

    def data_keys(self, user_id: str) -> list[bytes]:
        """Return every stored version of the user's data key, newest first.

        Raises:
            KeyDestroyedError: The user was forgotten.
            KeyNotFoundError: The user has no key.
        """
        path, tomb = self._user_paths(user_id)
        with self._lock:
            if tomb.exists():
                raise KeyDestroyedError(user_id)
            doc = self._read_user(user_id, path)
            if doc is None:
                raise KeyNotFoundError(user_id)
            keys: dict[int, bytes] = doc["keys"]
            return [keys[v] for v in sorted(keys, reverse=True)]

    def has_key(self, user_id: str) -> bool:
        """Whether the user has a live data key (false after :meth:`destroy`)."""
        path, tomb = self._user_paths(user_id)
        with self._lock:
            return path.exists() and not tomb.exists()

    def is_forgotten(self, user_id: str) -> bool:
        """Whether the user's key was destroyed and the tombstone is still in place."""
        _, tomb = self._user_paths(user_id)
        with self._lock:
            return tomb.exists()

    def rotate(self, user_id: str) -> bytes:
        """Make a new current data key for the user, keeping older versions for decryption.

        The caller re-encrypts its data with the returned key, then calls
        :meth:`retire_old_keys`. Until then :meth:`data_keys` returns old versions too.

        Returns:
            The new key.

        Raises:
            KeyDestroyedError: The user was forgotten.
        """
        path, tomb = self._user_paths(user_id)
        with self._lock:
            if tomb.exists():
                raise KeyDestroyedError(user_id)
            doc = self._read_user(user_id, path)
            keys: dict[int, bytes] = dict(doc["keys"]) if doc is not None else {}
            version = max(keys, default=0) + 1
            keys[version] = os.urandom(KEY_BYTES)
            self._write_user(user_id, path, keys, version)
            return keys[version]

    def retire_old_keys(self, user_id: str) -> int:
        """Drop every data key version but the current one (after re-encryption).

        Returns:
            How many versions were dropped.
        """
        path, tomb = self._user_paths(user_id)
        with self._lock:
            if tomb.exists():
                raise KeyDestroyedError(user_id)
            doc = self._read_user(user_id, path)
            if doc is None:
                raise KeyNotFoundError(user_id)
            keys: dict[int, bytes] = doc["keys"]
            current: int = doc["current"]
            if len(keys) > 1:
                self._write_user(user_id, path, {current: keys[current]}, current)
            return len(keys) - 1

    def destroy(self, user_id: str) -> None:
        """Crypto-shred the user: destroy every version of their data key, leave a tombstone.

        Idempotent. Afterwards :meth:`data_key` raises :class:`KeyDestroyedError`.
        """
        path, tomb = self._user_paths(user_id)
        with self._lock:
            # Tombstone first: a crash before the unlink still leaves the key unusable.
            _write_private(tomb, json.dumps({"forgotten_at": time.time()}).encode("utf-8"))
            self._finish_destroy(path)
            self._cache.pop(user_id, None)

    def _finish_destroy(self, path: Path) -> None:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, b"\0" * size)
            os.fsync(fd)
        finally:
            os.close(fd)
        path.unlink()
        _fsync_dir(path.parent)

    def forget_tombstone(self, user_id: str) -> None:
        """Lift a forgotten user's tombstone so the id may start fresh (old data stays lost).

        A user who was never forgotten is left as is: their key is not touched.
        """
        path, tomb = self._user_paths(user_id)
        with self._lock:
            if not tomb.exists():
                return
            self._finish_destroy(path)  # completes a destroy the tombstone says was started
            tomb.unlink(missing_ok=True)

    # -- device keys -------------------------------------------------------------------------

    def _device_key(self, name: str) -> bytes:
        path = self._root / f"{name}.key"
        with self._lock:
            if path.exists():
                doc = self._load_json(path)
                return self._unwrap(path, name, doc.get("key"))
            key = os.urandom(KEY_BYTES)
            doc = {"format": _FORMAT, "key": self._wrap(name, key)}
            _write_private(path, json.dumps(doc).encode("utf-8"))
            return key

    def audit_key(self) -> bytes:
        """Return the 32-byte HMAC-SHA256 key of the audit chain (made on first use)."""
        return self._device_key("audit")

    def audit_seal_key(self) -> bytes:
        """Return the 32-byte AES key that seals payload copies in the audit log (made on first use)."""
        return self._device_key("audit-seal")

    def signing_key(self) -> Ed25519PrivateKey:
        """Return the Ed25519 key that signs audit checkpoints (made on first use)."""
        return Ed25519PrivateKey.from_private_bytes(self._device_key("signing"))

    def export_public_key(self) -> str:
        """Return the checkpoint-signing public key as PEM, for an outside witness."""
        pub = self.signing_key().public_key()
        pem = pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.decode("ascii")
