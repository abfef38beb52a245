"""The daemon's key folder: its own CURVE key pair and the client public keys it accepts, by role.

    KEYS/server.key, server.key_secret        the daemon's pair (the secret never leaves this folder)
    KEYS/authorized/<role>/NAME.key           public keys the daemon accepts, one folder per role
    KEYS/clients/NAME.key, NAME.key_secret    pairs made by ``lptem keys add``, to hand to their users
    KEYS/revoked/NAME.key                     keys taken back by ``lptem keys revoke`` (kept for the record)

Files are pyzmq certificates (``zmq.auth``); secrets are written owner-only (0600). The daemon reads
``authorized/`` at start and again on SIGHUP or when the folder changes (lptem.service.auth).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq.auth

from lptem.service.protocol.curve import ROLES, KeyFileError, Role, read_key_file

SERVER = "server"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class AuthorisedKey:
    name: str
    role: Role
    public: bytes
    """Z85 text, 40 characters."""


class KeyFolder:
    """One daemon's keys (module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def authorized(self) -> Path:
        return self.path / "authorized"

    def init(self) -> Path:
        """Create the folder and the daemon's pair; an existing pair is kept. Returns ``server.key``."""
        for role in ROLES:
            (self.authorized / role).mkdir(parents=True, exist_ok=True)
        (self.path / "clients").mkdir(exist_ok=True)
        (self.path / "revoked").mkdir(exist_ok=True)
        os.chmod(self.path, 0o700)
        public = self.path / f"{SERVER}.key"
        if not public.exists():
            _create_pair(self.path, SERVER)
        return public

    def server_keys(self) -> tuple[bytes, bytes]:
        """The daemon's (public, secret) key."""
        public, secret = read_key_file(self.path / f"{SERVER}.key_secret")
        if secret is None:
            raise KeyFileError(f"{self.path / SERVER}.key_secret: holds no secret key")
        return public, secret

    def add(self, name: str, role: Role, *, public_key_file: Path | None = None) -> AuthorisedKey:
        """Authorise a new client ``name`` in ``role``: a new pair in ``clients/``, or the public key of a
        pair the client made itself (``public_key_file``)."""
        check_name(name)
        self._check_initialised()
        if self.find(name) is not None:
            raise KeyFileError(
                f"a key named {name!r} is already authorised; revoke it first or pick another name"
            )
        if public_key_file is None:
            source = _create_pair(self.path / "clients", name)
        else:
            public, secret = read_key_file(public_key_file)  # a readable key, before it is trusted
            if secret is not None:
                raise KeyFileError(
                    f"{public_key_file} holds a secret key: give the public NAME.key (the secret stays with "
                    "the client)"
                )
            holder = next((k for k in self.authorised() if k.public == public), None)
            if holder is not None:
                raise KeyFileError(
                    f"this public key is already authorised as {holder.name!r} ({holder.role})"
                )
            source = public_key_file
        target = self.authorized / role / f"{name}.key"
        shutil.copyfile(source, target)
        public, _ = read_key_file(target)
        return AuthorisedKey(name, role, public)

    def revoke(self, name: str) -> AuthorisedKey:
        """Take ``name``'s key back: it moves to ``revoked/``, and its secret (if made here) is deleted."""
        found = self.find(name)
        if found is None:
            raise KeyFileError(f"no authorised key named {name!r} (see lptem keys list)")
        (self.path / "revoked").mkdir(exist_ok=True)
        (self.authorized / found.role / f"{name}.key").replace(self.path / "revoked" / f"{name}.key")
        (self.path / "clients" / f"{name}.key_secret").unlink(missing_ok=True)
        return found

    def find(self, name: str) -> AuthorisedKey | None:
        return next((k for k in self.authorised() if k.name == name), None)

    def authorised(self) -> list[AuthorisedKey]:
        """Every authorised key, by role then name. An unreadable file is skipped (and reported by
        :meth:`problems`)."""
        out = []
        for role in ROLES:
            for path in sorted((self.authorized / role).glob("*.key")):
                try:
                    public, _ = read_key_file(path)
                except KeyFileError:
                    continue
                out.append(AuthorisedKey(path.stem, role, public))
        return out

    def problems(self) -> list[str]:
        """Files in ``authorized/`` that are not keys the daemon can use, and keys authorised twice."""
        out = []
        seen: dict[bytes, AuthorisedKey] = {}
        for key in self.authorised():
            if key.public in seen:
                first = seen[key.public]
                out.append(f"{key.role}/{key.name}.key is the same key as {first.role}/{first.name}.key")
            seen.setdefault(key.public, key)
        for role in ROLES:
            for path in sorted((self.authorized / role).glob("*")):
                try:
                    read_key_file(path)
                except KeyFileError as exc:
                    out.append(str(exc))
        return out

    def signature(self) -> tuple[tuple[str, int, int], ...]:
        """What changes when a key is added, revoked or edited (names, sizes, modification times)."""
        entries = []
        for role in ROLES:
            for path in sorted((self.authorized / role).glob("*")):
                try:
                    st = path.stat()
                except FileNotFoundError:  # removed while we looked
                    continue
                entries.append((f"{role}/{path.name}", st.st_size, st.st_mtime_ns))
        return tuple(entries)

    def _check_initialised(self) -> None:
        if not (self.path / f"{SERVER}.key_secret").exists():
            raise KeyFileError(f"{self.path}: no daemon key pair here; run lptem keys init {self.path} first")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or name == SERVER:
        raise KeyFileError(
            f"{name[:40]!r}: a key name is 1-64 letters, digits, '_', '.' or '-', not starting with a "
            f"punctuation mark, and not {SERVER!r}"
        )
    return name


def _create_pair(folder: Path, name: str) -> Path:
    """A new pair ``folder/name.key`` and ``.key_secret`` (0600); returns the public file."""
    folder.mkdir(parents=True, exist_ok=True)
    previous = os.umask(0o077)  # the secret is never readable by others, not even for a moment
    try:
        public, secret = zmq.auth.create_certificates(folder, name)
    finally:
        os.umask(previous)
    os.chmod(public, 0o644)
    os.chmod(secret, 0o600)
    return Path(public)
