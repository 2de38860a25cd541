"""On-call rotations: the `OnCall` document (apiVersion `stormdrill.dev/v1`) and its parser.

Invariants: the document is validated by pydantic with unknown fields rejected; every
problem is placed at file:line:column and a field path; a rotation covers exactly one
service or one team; override times are timezone-aware and end after they start. An
error belongs to one rotation: that rotation is refused (as is a second rotation of a
name already taken, the first one winning), the document's other rotations are kept.
The format is described in docs/cmdb.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

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
    refused: tuple[models.Refused, ...] = ()


def is_oncall(api_version: object, kind: object) -> bool:
    """Whether a document's envelope says it is an OnCall document."""
    return api_version == API_VERSION and kind == KIND


def parse_document(
    document: documents.Document,
    refs: references.RefReader,
    *,
    taken: Mapping[models.RotationName, models.SourceLocation] | None = None,
) -> Parsed:
    """Parse an OnCall document; references are read through `refs` for dangling checks.

    `taken` holds the rotations already read (name → where): a second one is refused.
    """
    source = models.SourceLocation(document.file, document.start.line, document.start.column)
    try:
        doc = _OnCallDoc.model_validate(document.data)
    except pydantic.ValidationError as exc:
        whole = models.Refused(f"OnCall document at {source}", source)
        return Parsed((), tuple(document.validation_problems(exc)), (whole,))
    names = dict(taken or {})
    problems: list[scenario_errors.Problem] = []
    rotations: list[models.Rotation] = []
    refused: list[models.Refused] = []
    for r_index, rotation in enumerate(doc.spec.rotations):
        path: documents.FieldPath = ("spec", "rotations", r_index)
        mark = document.mark(path)
        here = dataclasses.replace(source, line=mark.line, column=mark.column)
        name = models.RotationName(rotation.name)
        checkpoint = refs.checkpoint()
        own: list[scenario_errors.Problem] = []
        first = names.get(name)
        if first is not None:
            own.append(
                document.problem(
                    (*path, "name"),
                    f"rotation {rotation.name!r} is defined twice: first at {first} (kept),"
                    f" again at {here} (refused)",
                    hint=f"first defined at {first}",
                )
            )
            refused.append(models.Refused(f"rotation {rotation.name!r} (second definition)", here))
            problems.extend(own)
            continue
        parsed = _rotation(document, path, rotation, refs, own, source=here)
        problems.extend(own)
        if (
            parsed is None
            or refs.errors_since(checkpoint)
            or any(p.severity == "error" for p in own)
        ):
            refs.forget_sites_since(checkpoint)
            refused.append(models.Refused(f"rotation {rotation.name!r}", here))
            continue
        names[name] = here
        rotations.append(parsed)
    return Parsed(tuple(rotations), tuple(problems), tuple(refused))


def _rotation(
    document: documents.Document,
    path: documents.FieldPath,
    rotation: _RotationDoc,
    refs: references.RefReader,
    problems: list[scenario_errors.Problem],
    *,
    source: models.SourceLocation,
) -> models.Rotation | None:
    """One rotation, or None (with a problem) when it is not usable."""
    if (rotation.service is None) == (rotation.team is None):
        problems.append(
            document.problem(
                path,
                "a rotation covers exactly one service or one team",
                hint="set either 'service' or 'team'",
            )
        )
        return None
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
    return models.Rotation(
        name=models.RotationName(rotation.name),
        layers=layers,
        source=source,
        service=service,
        team=team,
    )


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
