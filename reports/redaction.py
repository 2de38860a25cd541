"""Redaction: secrets never reach a report.

`redact(text)` masks what looks like a credential: the userinfo of URLs
(`https://user:pass@host` -> `https://***@host`), `key=value` / `key: value` pairs whose
key names a secret (password, token, secret, api key, authorization…), bearer tokens,
AWS access key ids, GitHub/Slack-style tokens, JWTs and PEM private keys. It is applied
to every string of a post-mortem and every JUnit message, so a probe URL or an error
string carrying a token is masked wherever it appears. Pure and idempotent.
"""

from __future__ import annotations

import re
from collections.abc import Callable

MASK = "***"

_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@]+)@")
_KEYED = re.compile(
    r"(?P<key>\b[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|credentials?|session[_-]?key|auth)\b[\w.-]*)"
    r"(?P<sep>\s*[=:]\s*|\"\s*:\s*\"?|'\s*:\s*'?)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;&\"'}\]]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(?P<scheme>Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"),  # GitHub tokens
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"),  # Slack tokens
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b"),  # JWTs
    re.compile(r"\bsk_(?:live|test)_[A-Za-z0-9]{10,}\b"),  # payment-provider secret keys
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL),
)


def _keyed(match: re.Match[str]) -> str:
    value = match["value"]
    if value.strip("\"'") in ("", MASK):
        return match.group(0)
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match['key']}{match['sep']}{quote}{MASK}{quote}"


_STEPS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (_URL_USERINFO, r"\g<scheme>" + MASK + "@"),
    (_BEARER, r"\g<scheme> " + MASK),
    (_KEYED, _keyed),
    *((pattern, MASK) for pattern in _PATTERNS),
)


def redact(text: str) -> str:
    """`text` with every credential-looking part replaced by `***`."""
    for pattern, replacement in _STEPS:
        text = pattern.sub(replacement, text)
    return text
