"""Secrets: what counts as one, and masking it out of text and JSON.

Three rules decide what is secret:
- a parameter declared `secret: true`, or whose name looks secret (`looks_secret`: token,
  password, secret, credential, api key, private/access key, auth…);
- every VALUE bound to such a parameter, wherever it ends up (substituted into a URL, a
  header, a manual step's text, an error message): `Redactor` masks those literal values
  (and their URL-encoded form) in any text;
- credential-looking text whatever its origin (`redact`): the userinfo of URLs
  (`https://user:pass@host` -> `https://***@host`), `key=value` / `key: value` pairs whose
  key names a secret, bearer tokens, AWS access key ids, GitHub/Slack-style tokens, JWTs and
  PEM private keys.

`Redactor.json` walks JSON data and also masks the value under any key that looks secret
(the key-based rule sees the key, not just the value). Values shorter than `MIN_LITERAL`
characters are masked under their key but not searched for in free text (masking every
"42" would make a report unreadable). Everything here is pure and idempotent; this module
sits in the lowest layer so the journal (which redacts before writing) and the reports can
share it. `masking_logs` masks log lines the same way while a run is in progress.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping

MASK = "***"
MIN_LITERAL = 4
"""The shortest secret value masked wherever it appears in free text."""

_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "tokens",
        "credential",
        "credentials",
        "apikey",
        "auth",
        "authorization",
        "cookie",
        "privatekey",
        "signature",
    }
)
_KEY_KINDS = frozenset(
    {
        "api",
        "access",
        "secret",
        "private",
        "signing",
        "encryption",
        "master",
        "client",
        "session",
        "ssh",
        "license",
        "webhook",
        "hmac",
        "shared",
        "service",
        "account",
    }
)
"""The words before `key` that make a name secret (`signingKey`, not `targetKey`)."""
_SECRET_PARTS = ("password", "passwd", "secret", "token", "credential", "apikey", "authorization")
"""Substrings that make a lower-cased name secret even without word breaks (`dbpassword`)."""
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

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
    re.compile(r"\bsdt_[A-Za-z0-9_-]{20,}"),  # Stormdrill API tokens (their 12-char ids stay)
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL),
)


@functools.lru_cache(maxsize=4096)
def looks_secret(name: str) -> bool:
    """Whether a parameter or field name says its value is a secret.

    `apiToken`, `db_password`, `vendorApiKey`, `AWS_SECRET_ACCESS_KEY`, `clientSecret`,
    `credentials`, `authorization`, `signingKey`, `accessKey` are; `zone`, `keyPerson`,
    `maxKeys`, a tag's `Key`, a taint's `key`, `target_key` are not (a name ending in `key`
    is secret when the word before says which kind: api, access, private, signing…).
    """
    lowered = name.lower()
    if any(part in lowered for part in _SECRET_PARTS):
        return True
    words = [word.lower() for word in _WORDS.findall(name)]
    if not words:
        return False
    if _SECRET_WORDS.intersection(words):
        return True
    return len(words) >= 2 and words[-1] == "key" and words[-2] in _KEY_KINDS


def _keyed(match: re.Match[str]) -> str:
    value = match["value"]
    if value.strip("\"'") in ("", MASK):
        return match.group(0)
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match['key']}{match['sep']}{quote}{MASK}{quote}"


_Prefilter = Callable[[str], bool]


def _contains(*needles: str) -> _Prefilter:
    return lambda text: any(needle in text for needle in needles)


def _searches(*words: str) -> _Prefilter:
    """Whether `text` holds one of `words` (lower-case ASCII) as `re.IGNORECASE` compares.

    ASCII text is lower-cased and searched for the words as substrings; other text (where
    IGNORECASE also matches, say, the long s U+017F to "s") goes through the regular expression.
    """
    found = re.compile("|".join(map(re.escape, words)), re.IGNORECASE).search

    def may_match(text: str) -> bool:
        if text.isascii():
            lowered = text.lower()
            return any(word in lowered for word in words)
        return found(text) is not None

    return may_match


_STEPS: tuple[tuple[_Prefilter, re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # Each rule runs only where its prefilter finds what any match of it must contain (the
    # same case rules as the rule: `re.IGNORECASE` for the rules that have it), so a line
    # with none of it is not scanned by the slow rules at all (`_KEYED` alone costs about
    # 0.1 ms a line; a rollback writes two lines per revert).
    (_contains("@"), _URL_USERINFO, r"\g<scheme>" + MASK + "@"),
    (_searches("bearer", "basic", "token"), _BEARER, r"\g<scheme> " + MASK),
    (
        _searches("password", "passwd", "pwd", "secret", "token", "key", "credential", "auth"),
        _KEYED,
        _keyed,
    ),
    (_contains("AKIA", "ASIA", "AGPA", "AIDA", "AROA"), _PATTERNS[0], MASK),
    (_contains("gh"), _PATTERNS[1], MASK),
    (_contains("xox"), _PATTERNS[2], MASK),
    (_contains("eyJ"), _PATTERNS[3], MASK),
    (_contains("sk_"), _PATTERNS[4], MASK),
    (_contains("sdt_"), _PATTERNS[5], MASK),
    (_contains("-----BEGIN "), _PATTERNS[6], MASK),
)


def redact(text: str) -> str:
    """`text` with every credential-looking part replaced by `***` (pattern rules only)."""
    for may_match, pattern, replacement in _STEPS:
        if may_match(text):
            text = pattern.sub(replacement, text)
    return text


def _variants(value: str) -> set[str]:
    """A secret as it may be written: as is, URL-encoded (query or path), form-encoded."""
    return {
        value,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote(value),
        urllib.parse.quote_plus(value),
    }


@dataclasses.dataclass(frozen=True)
class Redactor:
    """Masks known secret values, values under secret keys, and credential-looking text.

    `values` are literal secrets (masked wherever they appear); `keys` are extra field
    names whose values are secret although their names do not look it (parameters declared
    `secret: true`).
    """

    values: frozenset[str] = frozenset()
    keys: frozenset[str] = frozenset()
    fingerprints: Fingerprints | None = None
    """Salted digests of secrets this process does not know in clear (those a run bound in
    another process): a word of text whose digest is among them is masked too."""

    def with_fingerprints(self, fingerprints: Fingerprints | None) -> Redactor:
        """A redactor that also masks the words whose digests are in `fingerprints`."""
        if fingerprints is None or not fingerprints.digests:
            return self
        return dataclasses.replace(self, fingerprints=fingerprints)

    def with_secrets(self, values: Iterable[str] = (), *, keys: Iterable[str] = ()) -> Redactor:
        """A redactor that also masks `values` and the values under `keys`."""
        kept = {v for v in values if len(v) >= MIN_LITERAL and v != MASK}
        return dataclasses.replace(
            self, values=self.values | frozenset(kept), keys=self.keys | frozenset(keys)
        )

    def secret_key(self, key: str) -> bool:
        return key in self.keys or looks_secret(key)

    def text(self, text: str) -> str:
        """`text` with every known secret value and credential-looking part masked."""
        if self.values:
            literal = sorted(
                {variant for value in self.values for variant in _variants(value)},
                key=len,
                reverse=True,
            )
            for value in literal:
                if value in text:
                    text = text.replace(value, MASK)
        if self.fingerprints is not None:
            text = self.fingerprints.mask(text)
        return redact(text)

    def json(self, value: object, *, key: str | None = None) -> object:
        """`value` (JSON data) with every secret masked; the value under a secret key too."""
        if key is not None and self.secret_key(key) and _is_secret_leaf(value):
            return MASK
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.json(v, key=str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.json(item, key=key) for item in value]
        return value


_WORD = re.compile(r"[^\s\"'`<>()\[\]{},;]{" + str(MIN_LITERAL) + ",}")
_TRAILING = ".:!?"


@dataclasses.dataclass(frozen=True)
class Fingerprints:
    """Salted SHA-256 digests of a run's secret values, kept in its record instead of them.

    Lets a later process (an `ack` with evidence, an operator's abort reason) mask a secret
    it never saw in clear: every word of its text is hashed and compared. A word is a run of
    characters without white space, quotes or brackets (trailing `.:!?` tried both ways).
    """

    salt: str
    digests: frozenset[str]

    @classmethod
    def of(cls, values: Iterable[str], *, salt: str) -> Fingerprints:
        return cls(salt=salt, digests=frozenset(_digest(salt, v) for v in values))

    def to_json(self) -> dict[str, str | list[str]]:
        return {"salt": self.salt, "sha256": sorted(self.digests)}

    @classmethod
    def from_json(cls, raw: object) -> Fingerprints | None:
        """The fingerprints a run record holds, or None when it holds none (or not these)."""
        if not isinstance(raw, Mapping):
            return None
        salt, digests = raw.get("salt"), raw.get("sha256")
        if not isinstance(salt, str) or not isinstance(digests, list):
            return None
        return cls(salt=salt, digests=frozenset(d for d in digests if isinstance(d, str)))

    def mask(self, text: str) -> str:
        def word(match: re.Match[str]) -> str:
            found = match.group(0)
            stripped = found.rstrip(_TRAILING)
            if _digest(self.salt, found) in self.digests:
                return MASK
            if stripped != found and _digest(self.salt, stripped) in self.digests:
                return MASK + found[len(stripped) :]
            return found

        return _WORD.sub(word, text)


def _digest(salt: str, value: str) -> str:
    return hashlib.sha256(f"{salt}\0{value}".encode()).hexdigest()


def _is_secret_leaf(value: object) -> bool:
    """A value a secret key masks: text or a number (not null, not a flag, not a structure)."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, str):
        return value not in ("", MASK)
    return isinstance(value, int | float)


def secret_values(
    *,
    declared: Mapping[str, bool],
    bound: Mapping[str, object],
    environment: Mapping[str, object],
) -> tuple[frozenset[str], frozenset[str]]:
    """The secret values of a drill, and the parameter names declared secret.

    `declared` maps each declared parameter to its `secret:` flag; `bound` holds the bound
    values; `environment` the Environment's parameters (secret-looking names there count
    even if the scenario does not use them).
    """
    values: set[str] = set()
    keys = {name for name, flag in declared.items() if flag}
    for name, value in bound.items():
        if name in keys or looks_secret(name):
            values.update(_texts(value))
    for name, value in environment.items():
        if looks_secret(name):
            values.update(_texts(value))
    return frozenset(values), frozenset(keys)


def _texts(value: object) -> list[str]:
    if isinstance(value, list | tuple):
        return [text for item in value for text in _texts(item)]
    if value is None or isinstance(value, bool):
        return []
    return [str(value)]


class LogMasker(logging.Filter):
    """A handler filter that masks secrets in each record's message (it never drops one)."""

    def __init__(self, redactor: Callable[[], Redactor]) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self._redactor().text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


@contextlib.contextmanager
def masking_logs(redactor: Callable[[], Redactor]) -> Iterator[None]:
    """While inside, every log line through the root's handlers (or Python's last-resort
    handler, which prints warnings when none is configured) is masked by `redactor()`."""
    handlers = list(logging.getLogger().handlers)
    if not handlers and logging.lastResort is not None:
        handlers = [logging.lastResort]
    masker = LogMasker(redactor)
    for handler in handlers:
        handler.addFilter(masker)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(masker)
