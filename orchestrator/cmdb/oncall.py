"""On-call rotations: the `OnCall` document (apiVersion `stormdrill.dev/v1`) and its parser.

Invariants: the document is validated by pydantic with unknown fields rejected; every
problem is placed at file:line:column and a field path; a rotation covers exactly one
service or one team; override times are timezone-aware and end after they start.
The format is described in docs/cmdb.md.
"""

from __future__ import annotations

import dataclasses

import pydantic

from orchestrator.cmdb import documents, models, references
from scenarios import errors as scenario_errors

API_VERSION = "stormdrill.dev/v1"
KIND = "OnCall"

_USER = frozenset({models.EntityKind.USER})
_SERVICE = models.SERVICE_KINDS
_TEAM = frozenset({models.EntityKind.GROUP})


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class _OverrideDoc(_Model):
    user: str
    start: pydantic.AwareDatetime
    end: pydantic.AwareDatetime
    replaces: str | None = None


class _LayerDoc(_Model):
    name: str
    members: list[str] = pydantic.Field(min_length=1)
    overrides: list[_OverrideDoc] = []


class _RotationDoc(_Model):
    name: str = pydantic.Field(pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    service: str | None = None
    team: str | None = None
    layers: list[_LayerDoc] = pydantic.Field(min_length=1)


class _SpecDoc(_Model):
    rotations: list[_RotationDoc] = []


class _MetadataDoc(_Model):
    name: str
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class _OnCallDoc(_Model):
    apiVersion: str
    kind: str
    metadata: _MetadataDoc
    spec: _SpecDoc


@dataclasses.dataclass(frozen=True)
class Parsed:
    """What one OnCall document holds."""

    rotations: tuple[models.Rotation, ...]
    problems: tuple[scenario_errors.Problem, ...]


def is_oncall(api_version: object, kind: object) -> bool:
    """Whether a document's envelope says it is an OnCall document."""
    return api_version == API_VERSION and kind == KIND


def parse_document(document: documents.Document, refs: references.RefReader) -> Parsed:
    """Parse an OnCall document; references are read through `refs` for dangling checks."""
    try:
        doc = _OnCallDoc.model_validate(document.data)
    except pydantic.ValidationError as exc:
        return Parsed((), tuple(document.validation_problems(exc)))
    problems: list[scenario_errors.Problem] = []
    rotations = []
    source = models.SourceLocation(document.file, document.start.line, document.start.column)
    for r_index, rotation in enumerate(doc.spec.rotations):
        path: documents.FieldPath = ("spec", "rotations", r_index)
        if (rotation.service is None) == (rotation.team is None):
            problems.append(
                document.problem(
                    path,
                    "a rotation covers exactly one service or one team",
                    hint="set either 'service' or 'team'",
                )
            )
            continue
        service = team = None
        if rotation.service is not None:
            service = refs.read(
                document,
                (*path, "service"),
                rotation.service,
                default_kind=models.EntityKind.COMPONENT,
                allowed=_SERVICE,
            )
        if rotation.team is not None:
            team = refs.read(
                document,
                (*path, "team"),
                rotation.team,
                default_kind=models.EntityKind.GROUP,
                allowed=_TEAM,
            )
        layers = tuple(
            _layer(document, (*path, "layers", i), layer, refs, problems)
            for i, layer in enumerate(rotation.layers)
        )
        mark = document.mark(path)
        rotations.append(
            models.Rotation(
                name=models.RotationName(rotation.name),
                layers=layers,
                source=dataclasses.replace(source, line=mark.line, column=mark.column),
                service=service,
                team=team,
            )
        )
    return Parsed(tuple(rotations), tuple(problems))


def _layer(
    document: documents.Document,
    path: documents.FieldPath,
    layer: _LayerDoc,
    refs: references.RefReader,
    problems: list[scenario_errors.Problem],
) -> models.Layer:
    members = refs.read_list(
        document,
        (*path, "members"),
        layer.members,
        default_kind=models.EntityKind.USER,
        allowed=_USER,
    )
    overrides = []
    for index, override in enumerate(layer.overrides):
        where = (*path, "overrides", index)
        if override.end <= override.start:
            problems.append(document.problem((*where, "end"), "the override ends before it starts"))
            continue
        user = refs.read(
            document,
            (*where, "user"),
            override.user,
            default_kind=models.EntityKind.USER,
            allowed=_USER,
        )
        replaces = None
        if override.replaces is not None:
            replaces = refs.read(
                document,
                (*where, "replaces"),
                override.replaces,
                default_kind=models.EntityKind.USER,
                allowed=_USER,
            )
            if replaces is not None and replaces not in members:
                problems.append(
                    document.problem(
                        (*where, "replaces"),
                        f"{override.replaces!r} is not a member of layer {layer.name!r}",
                    )
                )
        if user is not None:
            overrides.append(
                models.Override(
                    user=user, start=override.start, end=override.end, replaces=replaces
                )
            )
    return models.Layer(name=layer.name, members=members, overrides=tuple(overrides))
