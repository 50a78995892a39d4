"""Who may sign in to a shared review page: names with salted scrypt password hashes, in one file.

The file (``reviewers.json`` in the dataset root, or ``--reviewers FILE``) is written atomically
with mode 0600 and refused when others can read it, as ssh does with private keys. Hashes are
the standard library's :func:`hashlib.scrypt` with a random salt, the cost stored with each hash
(so it can be raised later): no home-made crypto.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from anfe.core.errors import AnfeError
from anfe.core.layout import write_atomically
from anfe.core.store import now_iso

#: The file's name in the dataset root.
REVIEWERS_FILE = "reviewers.json"
#: Version of the file's layout; a newer one is refused.
FILE_VERSION = 1
#: scrypt cost: N=2**15, r=8, p=1 uses 32 MiB and about 0.1 s per check (OWASP's minimum is
#: N=2**17 with r=8 for password storage at rest; sign-ins here are also rate-limited).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
MIN_PASSWORD_LENGTH = 10
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class ReviewersError(AnfeError):
    """The reviewers file is missing, unreadable, malformed or readable by others."""


class BadReviewerError(ReviewersError):
    """A reviewer name or password that cannot be used."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES,
                          maxmem=256 * r * n + 1024 * 1024)


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$key`` (base64) for ``password`` with a fresh random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded`` (constant-time comparison of the keys)."""
    try:
        scheme, n, r, p, salt, key = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key, validate=True)
        actual = _scrypt(password, base64.b64decode(salt, validate=True), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    """A hash no password matches, checked for unknown names so they take as long as known ones."""
    return hash_password(secrets.token_urlsafe(24))


def check_name(name: str) -> str:
    """``name`` stripped, or :class:`BadReviewerError` saying what a name may hold."""
    name = name.strip()
    if not NAME_PATTERN.fullmatch(name):
        raise BadReviewerError(f"{name!r} is not a usable reviewer name: use 1 to 64 letters, digits, "
                               f"'.', '_', '@' or '-', starting with a letter or digit")
    return name


@dataclass(frozen=True)
class Reviewer:
    """One entry of the file: the name, the password hash and when it was set."""

    name: str
    password_hash: str
    added: str

    @property
    def fingerprint(self) -> str:
        """Changes when the password does (a signed-in session ends then); reveals nothing of it."""
        return hashlib.sha256(self.password_hash.encode("ascii")).hexdigest()[:16]


def reviewers_path(root: Path | str, explicit: Path | str | None = None) -> Path:
    """The reviewers file: ``explicit`` if given, else ``ROOT/reviewers.json``."""
    return Path(explicit or Path(root) / REVIEWERS_FILE).expanduser()


def load(path: Path) -> dict[str, Reviewer]:
    """The reviewers in ``path`` by name; an absent file holds none."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ReviewersError(f"cannot read the reviewers file {path}: {exc.strerror or exc}") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ReviewersError(f"{path} can be read or written by other users (mode {stat.S_IMODE(mode):o}): "
                             f"run `chmod 600 {path}`")
    try:
        data = json.loads(text)
        version = int(data.get("version", 1))
        entries = data["reviewers"]
        if version > FILE_VERSION:
            raise ReviewersError(f"{path} was written by a newer version (file version {version}): "
                                 f"upgrade with `pip install -U anfe-faces`")
        return {name: Reviewer(name, e["hash"], e.get("added", "")) for name, e in entries.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ReviewersError(f"{path} is not a reviewers file ({exc}): fix it or remove it and add the "
                             f"reviewers again with `anfe review reviewers add NAME`") from None


def save(path: Path, reviewers: dict[str, Reviewer]) -> None:
    """Write ``reviewers`` to ``path`` atomically, with mode 0600 (owner only) from the start."""
    ordered = sorted(reviewers.values(), key=lambda r: r.name)
    data = {"version": FILE_VERSION, "reviewers": {r.name: {"hash": r.password_hash, "added": r.added}
                                                   for r in ordered}}
    write_atomically(path, (json.dumps(data, indent=1) + "\n").encode("utf-8"), mode=0o600)


def add(path: Path, name: str, password: str) -> bool:
    """Add ``name`` or change their password; True when the name is new."""
    name = check_name(name)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadReviewerError(f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters")
    reviewers = load(path)
    is_new = name not in reviewers
    reviewers[name] = Reviewer(name, hash_password(password), now_iso())
    save(path, reviewers)
    return is_new


def remove(path: Path, name: str) -> None:
    """Remove ``name``; :class:`BadReviewerError` when there is no such reviewer."""
    reviewers = load(path)
    if name not in reviewers:
        known = ", ".join(sorted(reviewers)) or "none"
        raise BadReviewerError(f"no reviewer {name!r} in {path} (reviewers: {known})")
    del reviewers[name]
    save(path, reviewers)


def authenticate(reviewers: dict[str, Reviewer], name: str, password: str) -> Reviewer | None:
    """The reviewer when ``name`` and ``password`` match, else None. An unknown name costs the
    same scrypt work as a wrong password, so timing does not tell which names exist."""
    reviewer = reviewers.get(name.strip())
    matches = verify_password(password, reviewer.password_hash if reviewer else _decoy_hash())
    return reviewer if reviewer and matches else None


__all__ = ["BadReviewerError", "MIN_PASSWORD_LENGTH", "REVIEWERS_FILE", "Reviewer", "ReviewersError", "add",
           "authenticate", "check_name", "hash_password", "load", "remove", "reviewers_path", "save",
           "verify_password"]
