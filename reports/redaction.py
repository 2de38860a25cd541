"""Redaction: secrets never reach a report.

The rules live in `scenarios.secrets` (the journal applies them before anything is
written, so the store already holds masked text); reports apply them again to every
string of a post-mortem and every JUnit message, with the run's `Redactor` when one is
known (the secret values bound in this process). `redact(text)` is the pattern-only form:
the userinfo of URLs (`https://user:pass@host` -> `https://***@host`), `key=value` /
`key: value` pairs whose key names a secret, bearer tokens, AWS access key ids,
GitHub/Slack-style tokens, JWTs and PEM private keys. `redact_json` also masks the value
under any key that looks secret. Pure and idempotent.

Reports are private too: `private_folder` and `write_private` create report folders 0700
and report files 0600 whatever the umask (a post-mortem names systems, people and probes).
"""

from __future__ import annotations

import os
from pathlib import Path

from scenarios import secrets

MASK = secrets.MASK
Redactor = secrets.Redactor


def redact(text: str, *, redactor: secrets.Redactor | None = None) -> str:
    """`text` with every credential-looking part (and every known secret) replaced by `***`."""
    return (redactor or secrets.Redactor()).text(text)


def redact_json(value: object, *, redactor: secrets.Redactor | None = None) -> object:
    """JSON data with secrets masked, including the value under any secret-looking key."""
    return (redactor or secrets.Redactor()).json(value)


def private_folder(path: Path) -> Path:
    """`path` as a folder, creating it and any missing parents 0700 (existing ones kept)."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    return path


def write_private(path: Path, text: str) -> Path:
    """Write `text` to `path` readable by its owner only (0600, also when it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)
    return path
