"""The local keyring: one AES-256 data key per user, the audit HMAC key, the audit signing key.

Layout under ``root`` (default ``specsteer_home() / "keys"``, mode 0700; every file 0600)::

    keyring.json            format and protection: "none", or "scrypt" with salt, cost, check blob
    audit.key               HMAC-SHA256 key for the audit chain
    audit-seal.key          AES key for sealed payload copies in the audit log
    signing.key             Ed25519 private key for audit checkpoints (sealed under a passphrase
                            of its own: with its public key beside it, for verifying)
    users/<id>.key          the user's data key versions (JSON)
    users/<id>.forgotten    tombstone left by destroy()

With a passphrase, each key is stored sealed (AES-GCM) under a key-encryption key derived with
scrypt, so a copied key folder is useless without the passphrase. Without one, keys rely on file
permissions only, like an SSH private key without a passphrase. The audit signing key can also
be sealed under a passphrase of its own (:meth:`Keyring.protect_signing_key`), so that whoever
can write the state folder cannot re-sign a rewritten audit log. The scrypt parameters stored in
the files are bounded before use (:mod:`._kdf`).

**Files.** Every key file is opened with ``O_NOFOLLOW`` (a symbolic link in its place is refused,
and destroying a key never follows one) and created under a random ``O_EXCL`` name, then linked
into place only if absent: two processes making the same key at once end up with one key.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from specsteer._errors import InvalidInputError
from specsteer._home import private_dir, specsteer_home
from specsteer.privacy._exceptions import (
    DecryptionError,
    KeyDestroyedError,
    KeyNotFoundError,
    KeyringCorruptedError,
    KeyringError,
    WrongPassphraseError,
)
from specsteer.privacy._kdf import ScryptParams, derive
from specsteer.privacy._keyfiles import (
    SymlinkError,
    create_private,
    read_private,
    shred,
    write_private,
)
from specsteer.privacy._seal import KEY_BYTES, open_sealed, seal

__all__ = ["KEYRING_PASSPHRASE_ENV", "SIGNING_PASSPHRASE_ENV", "Keyring", "validate_user_id"]

_FORMAT = 1
_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*")
_MAX_USER_ID = 128
_CHECK_PLAINTEXT = b"specsteer keyring passphrase check"
_SIGNING_AAD = b"specsteer-signing-key"
#: Where the audit log looks for the signing key's passphrase when none is passed.
SIGNING_PASSPHRASE_ENV = "SPECSTEER_SIGNING_PASSPHRASE"
#: Where a keyring protected by a passphrase finds it when none is passed (the CLI, the apps).
KEYRING_PASSPHRASE_ENV = "SPECSTEER_KEYRING_PASSPHRASE"


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


def _public_raw(private_raw: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(private_raw).public_key().public_bytes_raw()


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64 text")
    return base64.b64decode(text.encode("ascii"), validate=True)


class Keyring:
    """Key material for one device, under one folder.

    Thread-safe: one lock guards every read and write. Separate processes may share a folder;
    every write is atomic (temp file + rename), though two processes rotating the same user at the
    same moment may lose one rotation.

    Args:
        root: The key folder; default ``specsteer_home() / "keys"``.
        passphrase: Protects every key with a scrypt-derived key-encryption key. Must be given
            on every later open of a keyring created with one (or be in
            ``$SPECSTEER_KEYRING_PASSPHRASE``), and never for one created without.

    Raises:
        WrongPassphraseError: The passphrase is wrong, missing, or not expected.
        KeyringCorruptedError: ``keyring.json`` is unreadable.
    """

    def __init__(self, root: str | Path | None = None, *, passphrase: str | None = None) -> None:
        self._root = Path(root) if root is not None else specsteer_home() / "keys"
        self._users = self._root / "users"
        self._lock = threading.RLock()
        self._cache: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}
        private_dir(self._root)
        private_dir(self._users)
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
        if not meta_path.exists() and not meta_path.is_symlink():
            created, kek = self._create_meta(meta_path, passphrase)
            if created:
                return kek
            # Another process made the keyring first: open theirs.
        meta = self._load_json(meta_path)
        try:
            if meta.get("format") != _FORMAT:
                raise ValueError(f"unknown format {meta.get('format')!r}")
            protection = meta["protection"]
            if protection not in ("none", "scrypt"):
                raise ValueError(f"unknown protection {protection!r}")
            params = (
                ScryptParams.read(_unb64(meta["salt"]), meta) if protection == "scrypt" else None
            )
            check = _unb64(meta["check"]) if params is not None else b""
        except (KeyError, ValueError, TypeError) as e:
            raise self._corrupted(meta_path, e) from e
        if params is None:
            if passphrase is not None:
                raise WrongPassphraseError(
                    f"the keyring at {self._root} was created without a passphrase; "
                    "open it with passphrase=None"
                )
            return None
        passphrase = passphrase or os.environ.get(KEYRING_PASSPHRASE_ENV) or None
        if passphrase is None:
            raise WrongPassphraseError(
                f"the keyring at {self._root} is protected by a passphrase; pass passphrase=... "
                f"(on the command line and in the apps, set {KEYRING_PASSPHRASE_ENV})"
            )
        return self._check_passphrase(derive(passphrase, params, KEY_BYTES), check)

    def _check_passphrase(self, kek: bytes, check: bytes) -> bytes:
        try:
            if open_sealed(kek, check, b"specsteer-keyring-check") != _CHECK_PLAINTEXT:
                raise DecryptionError("check mismatch")
        except DecryptionError as e:
            raise WrongPassphraseError(
                f"wrong passphrase for the keyring at {self._root}; retry with the passphrase "
                "it was created with"
            ) from e
        return kek

    def _create_meta(self, meta_path: Path, passphrase: str | None) -> tuple[bool, bytes | None]:
        """Make ``keyring.json``: (whether this call made it, the key-encryption key)."""
        kek: bytes | None = None
        meta: dict[str, Any] = {"format": _FORMAT, "protection": "none"}
        if passphrase is not None:
            params = ScryptParams.new()
            kek = derive(passphrase, params, KEY_BYTES)
            meta = {
                "format": _FORMAT,
                "protection": "scrypt",
                "salt": _b64(params.salt),
                **params.as_dict(),
                "check": _b64(seal(kek, _CHECK_PLAINTEXT, b"specsteer-keyring-check")),
            }
        return create_private(meta_path, json.dumps(meta, sort_keys=True).encode("utf-8")), kek

    # -- low-level file helpers --------------------------------------------------------------

    def _corrupted(self, path: Path, cause: object) -> KeyringCorruptedError:
        why = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
        return KeyringCorruptedError(
            f"key file {path} is unreadable ({why}); restore it from a backup. "
            "Without one, the data sealed with it is lost: delete the file (for a user key, "
            "call Keyring.destroy(user_id)) and start again"
        )

    def _load_json(self, path: Path) -> dict[str, Any]:
        try:
            raw = read_private(path)
            data = json.loads(raw.decode("utf-8"))
        except SymlinkError as e:
            raise KeyringCorruptedError(
                f"key file {path} is a symbolic link; key files are never read through a link. "
                "Remove the link and put the real key file there (or restore it from a backup)"
            ) from e
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

    def _write_user(
        self, user_id: str, path: Path, keys: dict[int, bytes], current: int, *, new: bool = False
    ) -> bool:
        """Write the user's key file; with ``new``, only if none exists (False if one did)."""
        doc = {
            "format": _FORMAT,
            "user_id": user_id,
            "current": current,
            "versions": {str(v): self._wrap(f"data:{user_id}:{v}", k) for v, k in keys.items()},
        }
        data = json.dumps(doc, sort_keys=True).encode("utf-8")
        self._cache.pop(user_id, None)
        if new:
            return create_private(path, data)
        write_private(path, data)
        return True

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
            if self._write_user(user_id, path, {1: key}, 1, new=True):
                return key
            # Another process made this user's key first: use theirs, or data sealed by one of
            # us could never be opened again.
            return self.data_key(user_id, create=False)

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

    def user_key_path(self, user_id: str) -> Path:
        """The file that holds the user's data key versions (it may not exist)."""
        return self._user_paths(user_id)[0]

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
            write_private(tomb, json.dumps({"forgotten_at": time.time()}).encode("utf-8"))
            self._finish_destroy(path)
            self._cache.pop(user_id, None)

    def _finish_destroy(self, path: Path) -> None:
        shred(path)  # overwrite, fsync, unlink; a link in its place is removed, never followed

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

    def _device_doc(self, name: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The device key file ``<name>.key``, made with ``make`` if absent (link-if-absent:
        when two processes make it at once, both end up with the winner's)."""
        path = self._root / f"{name}.key"
        with self._lock:
            if not (path.exists() or path.is_symlink()):
                doc = make()
                if create_private(path, json.dumps(doc).encode("utf-8")):
                    return doc
            return self._load_json(path)

    def _device_key(self, name: str) -> bytes:
        doc = self._device_doc(
            name, lambda: {"format": _FORMAT, "key": self._wrap(name, os.urandom(KEY_BYTES))}
        )
        return self._unwrap(self._root / f"{name}.key", name, doc.get("key"))

    def audit_key(self) -> bytes:
        """Return the 32-byte HMAC-SHA256 key of the audit chain (made on first use)."""
        return self._device_key("audit")

    def audit_seal_key(self) -> bytes:
        """Return the 32-byte AES key that seals payload copies in the audit log (made on first use)."""
        return self._device_key("audit-seal")

    def receipt_signing_key(self) -> Ed25519PrivateKey:
        """Return the Ed25519 key a cloud server signs its receipts with (made on first use)."""
        return Ed25519PrivateKey.from_private_bytes(self._device_key("receipt"))

    def signing_key(self, passphrase: str | None = None) -> Ed25519PrivateKey:
        """Return the Ed25519 key that signs audit checkpoints (made on first use).

        Args:
            passphrase: The signing key's own passphrase, when it is sealed under one (see
                :meth:`protect_signing_key`); a key made by this call is sealed under it.

        Raises:
            WrongPassphraseError: The key is sealed and the passphrase is missing or wrong, or
                a passphrase was given for a key that is not sealed.
        """
        doc = self._device_doc("signing", lambda: self._signing_doc(os.urandom(32), passphrase))
        return Ed25519PrivateKey.from_private_bytes(self._open_signing(doc, passphrase))

    def signing_public_key(self, passphrase: str | None = None) -> Ed25519PublicKey:
        """Return the public key that verifies audit checkpoints, without unsealing the signing
        key when it is sealed under its own passphrase (its public key is stored beside it).

        Args:
            passphrase: Needed only for a key sealed before its public key was stored beside it.

        Raises:
            KeyringError: There is no signing key yet (no log was signed with this keyring).
            WrongPassphraseError: A key sealed before its public key was stored, and no
                passphrase.
        """
        path = self._root / "signing.key"
        with self._lock:
            if not (path.exists() or path.is_symlink()):
                raise KeyringError(
                    f"no audit signing key in {self._root}: no audit log was signed with this "
                    "keyring; verify the log with the public key it was signed with (--public-key)"
                )
            doc = self._load_json(path)
        if doc.get("protection") != "scrypt":
            return self.signing_key().public_key()
        if "public" not in doc:
            if passphrase is not None:
                return self.signing_key(passphrase).public_key()  # and stores it beside the key
            raise WrongPassphraseError(
                "the audit signing key was sealed before its public key was stored beside it; set "
                f"{SIGNING_PASSPHRASE_ENV} for one session that writes the log to store it"
            )
        try:
            return Ed25519PublicKey.from_public_bytes(_unb64(doc["public"]))
        except (ValueError, TypeError) as e:
            raise self._corrupted(path, e) from e

    def signing_key_protected(self) -> bool:
        """Whether the signing key is sealed under its own passphrase."""
        path = self._root / "signing.key"
        with self._lock:
            return path.exists() and self._load_json(path).get("protection") == "scrypt"

    def protect_signing_key(self, passphrase: str) -> None:
        """Seal the signing key under ``passphrase`` (scrypt), so the key file alone cannot
        re-sign a rewritten log. The key stays the same, so earlier checkpoints still verify;
        a copy taken while it lay unprotected is not covered.

        Raises:
            InvalidInputError: An empty passphrase.
            WrongPassphraseError: The key is already sealed.
        """
        if not passphrase:
            raise InvalidInputError("the signing key's passphrase must be non-empty")
        with self._lock:
            if self.signing_key_protected():
                raise WrongPassphraseError(
                    "the audit signing key is already sealed under a passphrase; nothing changed"
                )
            raw = self.signing_key().private_bytes_raw()
            doc = self._signing_doc(raw, passphrase)
            write_private(self._root / "signing.key", json.dumps(doc).encode("utf-8"))

    def _signing_doc(self, raw: bytes, passphrase: str | None) -> dict[str, Any]:
        if passphrase is None:
            return {"format": _FORMAT, "key": self._wrap("signing", raw)}
        if not passphrase:
            raise InvalidInputError("the signing key's passphrase must be non-empty")
        params = ScryptParams.new()
        sealed = seal(derive(passphrase, params, KEY_BYTES), raw, _SIGNING_AAD)
        return {
            "format": _FORMAT,
            "protection": "scrypt",
            "salt": _b64(params.salt),
            **params.as_dict(),
            "key": _b64(sealed),
            "public": _b64(_public_raw(raw)),
        }

    def _open_signing(self, doc: dict[str, Any], passphrase: str | None) -> bytes:
        path = self._root / "signing.key"
        if doc.get("protection") != "scrypt":
            if passphrase is not None:
                raise WrongPassphraseError(
                    "the audit signing key is not sealed under a passphrase; seal it first with "
                    "`specsteer audit protect` (Keyring.protect_signing_key), or give none"
                )
            return self._unwrap(path, "signing", doc.get("key"))
        if passphrase is None:
            raise WrongPassphraseError(
                "the audit signing key is sealed under its own passphrase; set "
                f"{SIGNING_PASSPHRASE_ENV} (or pass signing_passphrase=...)"
            )
        try:
            params = ScryptParams.read(_unb64(doc["salt"]), doc)
            blob = _unb64(doc["key"])
        except (KeyError, ValueError, TypeError) as e:
            raise self._corrupted(path, e) from e
        try:
            raw = open_sealed(derive(passphrase, params, KEY_BYTES), blob, _SIGNING_AAD)
        except DecryptionError as e:
            raise WrongPassphraseError(
                "wrong passphrase for the audit signing key; retry with the one it was sealed with"
            ) from e
        self._store_public(path, doc, raw)
        return raw

    def _store_public(self, path: Path, doc: dict[str, Any], raw: bytes) -> None:
        """Check the public key stored beside a sealed signing key; store it if it is missing."""
        public = _b64(_public_raw(raw))
        if "public" not in doc:
            with self._lock:
                write_private(path, json.dumps({**doc, "public": public}).encode("utf-8"))
        elif doc["public"] != public:
            raise self._corrupted(path, ValueError("its public key does not match the sealed key"))

    def export_public_key(self, passphrase: str | None = None) -> str:
        """Return the checkpoint-signing public key as PEM, for an outside witness."""
        pub = self.signing_key(passphrase).public_key()
        pem = pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.decode("ascii")
