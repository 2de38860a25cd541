"""Examples: recorded answers of the real API, shown as the OpenAPI example of each success.

`examples.json` (package data next to this module) holds, per path template, method,
status and media type, the first successful body `tests/api/record_examples.py` recorded
from a real run of the app (`.venv/bin/python -m tests.api.record_examples` writes it
again): nothing in it is written by hand. JSON media types hold the parsed body, the others
the text. `install(app)` makes `app.openapi()` set `content[media]["example"]` on every
recorded 2xx response of the generated document; the file is read on the first call of
`app.openapi()` (never at import time) and the document is cached as FastAPI caches it.
A media type is matched without its parameters (`text/csv; charset=utf-8` is `text/csv`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib.resources
import json
from collections.abc import Iterator, Mapping
from typing import Any

import fastapi
import pydantic

RESOURCE = "examples.json"

_Recorded = dict[str, dict[str, dict[str, dict[str, pydantic.JsonValue]]]]
"""The file's shape: path -> method -> status -> media type -> body."""


@functools.cache
def _file_format() -> pydantic.TypeAdapter[_Recorded]:
    return pydantic.TypeAdapter(_Recorded)


@dataclasses.dataclass(frozen=True, order=True)
class ResponseKey:
    """One successful response of one operation: `GET /api/v1/runs 200 application/json`."""

    path: str
    """The OpenAPI path template (`/api/v1/runs/{run_id}`)."""
    method: str
    """Lower case, as OpenAPI spells it."""
    status: str
    media: str
    """Without parameters (`text/csv`, not `text/csv; charset=utf-8`)."""

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path} {self.status} {self.media}"


def base_media(media: str) -> str:
    """`text/csv; charset=utf-8` -> `text/csv`."""
    return media.split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    """Whether bodies of `media` are recorded parsed (JSON) rather than as text."""
    base = base_media(media)
    return base == "application/json" or base.endswith("+json")


def successes(spec: Mapping[str, Any]) -> Iterator[tuple[ResponseKey, str]]:
    """Every 2xx response content of the OpenAPI document `spec`, with its content key."""
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            for status, response in operation.get("responses", {}).items():
                if not str(status).startswith("2"):
                    continue
                for media in response.get("content", {}):
                    yield ResponseKey(path, method, str(status), base_media(media)), media


def load() -> dict[ResponseKey, pydantic.JsonValue]:
    """The recorded examples (the package's `examples.json`)."""
    text = importlib.resources.files("drills.api").joinpath(RESOURCE).read_text(encoding="utf-8")
    return parse(text)


def parse(text: str) -> dict[ResponseKey, pydantic.JsonValue]:
    """Examples from the text of an `examples.json` (path -> method -> status -> media)."""
    nested = _file_format().validate_json(text)
    return {
        ResponseKey(path, method, status, media): body
        for path, methods in nested.items()
        for method, statuses in methods.items()
        for status, medias in statuses.items()
        for media, body in medias.items()
    }


def render(recorded: Mapping[ResponseKey, pydantic.JsonValue]) -> str:
    """The text of an `examples.json` holding `recorded` (sorted keys: stable to diff)."""
    nested: _Recorded = {}
    for key, body in recorded.items():
        nested.setdefault(key.path, {}).setdefault(key.method, {}).setdefault(key.status, {})[
            key.media
        ] = body
    return json.dumps(nested, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def with_examples(
    spec: Mapping[str, Any], recorded: Mapping[ResponseKey, pydantic.JsonValue]
) -> dict[str, Any]:
    """A copy of the OpenAPI document `spec` with each recorded success's example set."""
    found = copy.deepcopy(dict(spec))
    for key, media in successes(found):
        if key in recorded:
            content = found["paths"][key.path][key.method]["responses"][key.status]["content"]
            content[media]["example"] = recorded[key]
    return found


def install(app: fastapi.FastAPI) -> None:
    """Make `app.openapi()` answer the generated document with the recorded examples."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_examples(generate(), load())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
