"""Fields: typed reads of the JSON payloads (undo data, params) this provider writes.

Invariant: undo data is read back exactly as written; a missing or mistyped field is a
`ProviderPermanent` naming the action and the field (the journal entry is damaged).
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator import errors, mutations


def _bad(owner: str, key: str, want: str) -> errors.ProviderPermanent:
    return errors.ProviderPermanent(
        f"{owner}: undo data field {key!r} is missing or not {want}; the journal entry is "
        "damaged, heal the resource by its stormdrill:* tags (`stormdrill recover`)"
    )


def text(data: Mapping[str, mutations.JsonValue], key: str, *, owner: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise _bad(owner, key, "a string")
    return value


def optional_text(data: Mapping[str, mutations.JsonValue], key: str, *, owner: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(owner, key, "a string")
    return value


def texts(data: Mapping[str, mutations.JsonValue], key: str, *, owner: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise _bad(owner, key, "a list of strings")
    return [str(v) for v in value]


def text_map(data: Mapping[str, mutations.JsonValue], key: str, *, owner: str) -> dict[str, str]:
    value = data.get(key, {})
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise _bad(owner, key, "an object of strings")
    return {str(k): str(v) for k, v in value.items()}
