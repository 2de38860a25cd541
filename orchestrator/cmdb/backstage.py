"""Backstage descriptor loader: `catalog-info.yaml` files and folders into a `Catalog`.

Reads multi-document files, folders (every `*.yaml`/`*.yml` below them) and the
`Location` entities they contain (relative `spec.target`/`spec.targets`, globs
allowed, followed at most `MAX_LOCATION_DEPTH` deep and `MAX_FILES` files in all);
`OnCall` documents (apiVersion `stormdrill.dev/v1`) found on the way are read too.

Invariants: nothing is read until `load_catalog` is called, and only from the paths it is
given (which CMDB to use is decided above this layer; nothing here reads the process
environment); YAML is read only through `scenarios.reading` (bounded nesting, control
characters at their line); every problem is placed at file:line:column and a field path;
unknown kinds and foreign documents are skipped with a warning. As in Backstage, an error
belongs to one entity: an invalid entity, a second definition of an entity (the first one
wins; both places are named), a missing Location target or a document that is not valid
YAML is *refused* — listed in `Catalog.refused`, its errors in `Catalog.problems` — and the
rest of the catalog loads. A relation naming an unexpected kind is a warning and is kept as
written. A strict load (`stormdrill cmdb validate`, `--strict`) raises `CatalogInvalid` on
any error; so does a load where nothing at all could be read.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import glob
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pydantic

from orchestrator.cmdb import annotation, documents, errors, linking, models, oncall, references
from scenarios import errors as scenario_errors

log = logging.getLogger(__name__)

_T = TypeVar("_T")

ENV_VAR = "STORMDRILL_CMDB"
"""Environment variable naming catalog files or folders, separated by `os.pathsep`."""

MAX_LOCATION_DEPTH = 8
MAX_FILES = 1000
YAML_SUFFIXES = (".yaml", ".yml")
VENDOR_TYPES = frozenset({"vendor", "third-party"})

_K = models.EntityKind
_SERVICES = models.SERVICE_KINDS
_OWNERS = frozenset({_K.GROUP, _K.USER})


def load_catalog(paths: Sequence[Path], *, strict: bool = False) -> models.Catalog:
    """Load every file and folder in `paths` (and the locations they name) into a Catalog.

    What is refused is left out and listed in `Catalog.refused` (its errors are in
    `Catalog.problems`). Raises `CatalogInvalid` (every problem, warnings too) when
    `strict` and anything has an error, or when there are errors and nothing loaded.
    """
    reader = _Reader()
    for path in paths:
        reader.add(path, depth=0, origin=None)
    catalog, link_problems = linking.link(
        entities=list(reader.entities.values()), rotations=reader.rotations, refs=()
    )
    dangling = references.dangling(
        reader.refs.sites, known=reader.entities.keys(), refused=reader.refused_refs
    )
    problems = [*reader.problems, *reader.refs.problems, *link_problems, *dangling]
    problems.sort(key=lambda p: (p.file, p.line, p.column))
    has_errors = any(p.severity == "error" for p in problems)
    if has_errors and (strict or not (reader.entities or reader.rotations)):
        raise errors.CatalogInvalid(problems)
    log.info(
        "loaded %d services, %d groups, %d users and %d rotations from %d files (%d problems)",
        len(catalog.services),
        len(catalog.groups),
        len(catalog.users),
        len(catalog.rotations),
        len(reader.seen),
        len(problems),
    )
    if reader.refused:  # commands present this themselves (`refusal_lines`)
        log.info(
            "catalog: %d refused (%s); the rest is used",
            len(reader.refused),
            ", ".join(r.what for r in reader.refused[:_NAMED]),
        )
    return dataclasses.replace(catalog, problems=tuple(problems), refused=tuple(reader.refused))


def refusal_lines(catalog: models.Catalog | None, *, strict: bool = False) -> list[str]:
    """What a command tells a person about a partial catalog: its errors, then a count.

    Empty for a catalog that refused nothing. With `strict`, raises `CatalogInvalid`
    instead (for commands that load leniently and are asked to be strict).
    """
    if catalog is None or not (catalog.refused or catalog.errors):
        return []
    if strict:
        raise errors.CatalogInvalid(catalog.problems)
    named = ", ".join(r.what for r in catalog.refused[:_NAMED])
    more = f" and {len(catalog.refused) - _NAMED} more" if len(catalog.refused) > _NAMED else ""
    count = len(catalog.refused)
    summary = (
        f"CMDB: {count} catalog entr{'y' if count == 1 else 'ies'} refused ({named}{more});"
        " going on with the rest. `stormdrill cmdb validate` lists every problem;"
        " --strict makes them fatal"
    )
    return [*(str(p) for p in catalog.errors), summary]


_NAMED = 5
"""How many refused entries a summary names."""


@dataclasses.dataclass(frozen=True)
class _Origin:
    """The Location target that led to a path: its document, field and text."""

    document: documents.Document
    field: documents.FieldPath
    target: str


class _Model(pydantic.BaseModel):
    """Backstage documents: unknown fields are allowed (plugins add their own)."""

    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)


class _Metadata(_Model):
    name: str
    namespace: str = models.DEFAULT_NAMESPACE
    title: str | None = None
    description: str | None = None
    annotations: dict[str, object] = {}


class _Envelope(_Model):
    apiVersion: str
    kind: str
    metadata: _Metadata
    spec: dict[str, object] = {}


class _ComponentSpec(_Model):
    type: str
    lifecycle: str
    owner: str
    system: str | None = None
    subcomponentOf: str | None = None
    providesApis: list[str] = []
    consumesApis: list[str] = []
    dependsOn: list[str] = []
    dependencyOf: list[str] = []


class _ResourceSpec(_Model):
    type: str
    owner: str
    system: str | None = None
    dependsOn: list[str] = []
    dependencyOf: list[str] = []


class _SystemSpec(_Model):
    owner: str
    domain: str | None = None


class _DomainSpec(_Model):
    owner: str


class _ApiSpec(_Model):
    type: str
    lifecycle: str
    owner: str
    system: str | None = None


class _Profile(_Model):
    displayName: str | None = None
    email: str | None = None


class _GroupSpec(_Model):
    type: str
    profile: _Profile = _Profile()
    parent: str | None = None
    children: list[str] = []
    members: list[str] = []


class _UserSpec(_Model):
    profile: _Profile = _Profile()
    memberOf: list[str] = []


class _LocationSpec(_Model):
    type: str | None = None
    target: str | None = None
    targets: list[str] = []


_SPECS: dict[models.EntityKind, type[_Model]] = {
    _K.COMPONENT: _ComponentSpec,
    _K.RESOURCE: _ResourceSpec,
    _K.SYSTEM: _SystemSpec,
    _K.DOMAIN: _DomainSpec,
    _K.API: _ApiSpec,
    _K.GROUP: _GroupSpec,
    _K.USER: _UserSpec,
    _K.LOCATION: _LocationSpec,
}


class _Reader:
    """One load: files seen, entities and rotations read, problems found, what was refused."""

    def __init__(self) -> None:
        self.seen: set[Path] = set()
        self.entities: dict[models.EntityRef, linking.ParsedEntity] = {}
        self.rotations: list[models.Rotation] = []
        self.problems: list[scenario_errors.Problem] = []
        self.refs = references.RefReader()
        self.refused: list[models.Refused] = []
        self.refused_refs: dict[models.EntityRef, models.SourceLocation] = {}

    def add(self, path: Path, *, depth: int, origin: _Origin | None) -> None:
        """Read a file or every YAML file below a folder."""
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())
            if not files:
                self._missing(path, origin, "the folder holds no .yaml or .yml file")
            for file in files:
                self.add(file, depth=depth, origin=origin)
            return
        if not path.is_file():
            self._missing(path, origin, "no such file or folder")
            return
        resolved = path.resolve()
        if resolved in self.seen:
            return
        if len(self.seen) >= MAX_FILES:
            self._missing(path, origin, f"more than {MAX_FILES} catalog files; not read")
            return
        self.seen.add(resolved)
        docs, problems = documents.read_documents(path)
        self.problems.extend(problems)
        yaml_errors = [p for p in problems if p.severity == "error"]
        if yaml_errors:
            what = f"{path} (not valid YAML)" if not docs else f"documents of {path} (invalid YAML)"
            first = yaml_errors[0]
            self.refused.append(
                models.Refused(what, models.SourceLocation(first.file, first.line, first.column))
            )
        for document in docs:
            self._document(document, path=path, depth=depth)

    def _missing(self, path: Path, origin: _Origin | None, message: str) -> None:
        if origin is not None:
            problem = origin.document.problem(origin.field, f"{path}: {message}")
            what = f"Location target {origin.target!r}"
        else:
            problem = scenario_errors.Problem(
                file=str(path), line=1, column=1, field="", message=message
            )
            what = str(path)
        self.problems.append(problem)
        self.refused.append(
            models.Refused(what, models.SourceLocation(problem.file, problem.line, problem.column))
        )

    def _document(self, document: documents.Document, *, path: Path, depth: int) -> None:
        data = document.data
        if not isinstance(data, dict):
            self._refuse(
                document,
                [
                    document.problem(
                        (), "a catalog document must be a mapping (apiVersion, kind, …)"
                    )
                ],
            )
            return
        api_version, kind = data.get("apiVersion"), data.get("kind")
        if oncall.is_oncall(api_version, kind):
            self._oncall(document)
            return
        if not isinstance(api_version, str) or not api_version.startswith("backstage.io/"):
            self.problems.append(
                document.problem(
                    ("apiVersion",),
                    f"not a Backstage entity (apiVersion {api_version!r}); skipped",
                    severity="warning",
                )
            )
            return
        try:
            entity_kind = models.EntityKind.parse(str(kind))
        except ValueError:
            self.problems.append(
                document.problem(
                    ("kind",),
                    f"kind {kind!r} is not used by Stormdrill; skipped",
                    hint="Stormdrill reads " + ", ".join(k.value.title() for k in _SPECS),
                    severity="warning",
                )
            )
            return
        checkpoint = self.refs.checkpoint()
        own, parsed = self._entity(document, data, entity_kind)
        if self.refs.errors_since(checkpoint) or any(p.severity == "error" for p in own):
            self.refs.forget_sites_since(checkpoint)
            self._refuse(document, own, kind=entity_kind)
            return
        self.problems.extend(own)
        if isinstance(parsed, _LocationSpec):
            self._location(document, parsed, path=path, depth=depth)
        elif parsed is not None:
            self._accept(parsed, checkpoint)

    def _entity(
        self, document: documents.Document, data: dict[str, object], kind: models.EntityKind
    ) -> tuple[list[scenario_errors.Problem], linking.ParsedEntity | _LocationSpec | None]:
        """Validate one Backstage document; its own problems (refs add theirs to `refs`)."""
        try:
            envelope = _Envelope.model_validate(data)
        except pydantic.ValidationError as exc:
            return document.validation_problems(exc), None
        try:
            spec = _SPECS[kind].model_validate(envelope.spec)
        except pydantic.ValidationError as exc:
            return document.validation_problems(exc, prefix=("spec",)), None
        if isinstance(spec, _LocationSpec):
            return [], spec
        return [], _EntityParser(document, envelope, kind, self.refs).parse(spec)

    def _accept(self, parsed: linking.ParsedEntity, checkpoint: references.Checkpoint) -> None:
        first = self.entities.get(parsed.ref)
        if first is None:
            self.entities[parsed.ref] = parsed
            return
        self.refs.forget_sites_since(checkpoint)
        problem = parsed.document.problem(
            ("metadata", "name"),
            f"{parsed.ref} is defined twice: first at {first.source} (kept),"
            f" again at {parsed.source} (refused)",
            hint=f"first defined at {first.source}; rename or remove one",
        )
        self.problems.append(problem)
        self.refused.append(models.Refused(f"{parsed.ref} (second definition)", parsed.source))

    def _refuse(
        self,
        document: documents.Document,
        problems: Sequence[scenario_errors.Problem],
        *,
        kind: models.EntityKind | None = None,
    ) -> None:
        """Leave one document out; its `problems` are kept, and so is where it was.

        (Problems its references raised are already in `refs.problems`.)
        """
        self.problems.extend(problems)
        source = models.SourceLocation(document.file, document.start.line, document.start.column)
        ref = _written_ref(document.data, kind)
        if ref is not None and ref not in self.entities:
            self.refused_refs.setdefault(ref, source)
        unnamed = f"{kind.value if kind else 'document'} at {source}"
        what = str(ref) if ref is not None else unnamed
        self.refused.append(
            models.Refused(what, source, break_glass=_raw_break_glass(document.data))
        )

    def _oncall(self, document: documents.Document) -> None:
        taken = {r.name: r.source for r in self.rotations}
        parsed = oncall.parse_document(document, self.refs, taken=taken)
        self.rotations.extend(parsed.rotations)
        self.problems.extend(parsed.problems)
        self.refused.extend(parsed.refused)

    def _location(
        self, document: documents.Document, spec: _LocationSpec, *, path: Path, depth: int
    ) -> None:
        targets: list[tuple[documents.FieldPath, str]] = []
        if spec.target is not None:
            targets.append((("spec", "target"), spec.target))
        targets.extend((("spec", "targets", i), t) for i, t in enumerate(spec.targets))
        for field, target in targets:
            here = _Origin(document, field, target)
            if "://" in target:
                self.problems.append(
                    document.problem(
                        field,
                        f"URL location {target!r} is not followed",
                        hint="check the file out and pass its local path with --cmdb",
                        severity="warning",
                    )
                )
                continue
            if depth + 1 > MAX_LOCATION_DEPTH:
                self._missing(
                    Path(target),
                    here,
                    f"locations nest deeper than {MAX_LOCATION_DEPTH}; not followed",
                )
                continue
            pattern = os.path.normpath(os.path.join(path.parent, target))
            if glob.has_magic(pattern):
                matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
                if not matches:
                    self.problems.append(
                        document.problem(field, f"{target!r} matches no file", severity="warning")
                    )
                for match in matches:
                    self.add(match, depth=depth + 1, origin=here)
            else:
                self.add(Path(pattern), depth=depth + 1, origin=here)


class _EntityParser:
    """Turns one validated Backstage document into a `ParsedEntity`."""

    def __init__(
        self,
        document: documents.Document,
        envelope: _Envelope,
        kind: models.EntityKind,
        refs: references.RefReader,
    ) -> None:
        self.document = document
        self.envelope = envelope
        self.kind = kind
        self.refs = refs
        self.namespace = envelope.metadata.namespace.lower()
        self.problems = refs.problems

    def _ref(
        self,
        field: str,
        raw: str | None,
        *,
        default: models.EntityKind | None,
        allowed: frozenset[models.EntityKind],
    ) -> models.EntityRef | None:
        if raw is None:
            return None
        return self.refs.read(
            self.document,
            ("spec", field),
            raw,
            default_kind=default,
            allowed=allowed,
            namespace=self.namespace,
            lenient_kind=True,
        )

    def _refs(
        self,
        field: str,
        raws: list[str],
        *,
        default: models.EntityKind | None,
        allowed: frozenset[models.EntityKind],
    ) -> tuple[models.EntityRef, ...]:
        return self.refs.read_list(
            self.document,
            ("spec", field),
            raws,
            default_kind=default,
            allowed=allowed,
            namespace=self.namespace,
            lenient_kind=True,
        )

    def parse(self, spec: _Model) -> linking.ParsedEntity | None:
        metadata = self.envelope.metadata
        try:
            ref = models.EntityRef.parse(f"{self.kind.value}:{metadata.namespace}/{metadata.name}")
        except errors.RefInvalid as exc:
            self.problems.append(self.document.problem(("metadata", "name"), exc.reason))
            return None
        start = self.document.start
        entity = linking.ParsedEntity(
            ref=ref,
            document=self.document,
            source=models.SourceLocation(self.document.file, start.line, start.column),
            title=metadata.title,
            description=metadata.description,
        )
        entity = self._spec(entity, spec)
        if self.kind in _SERVICES:
            entity = _AnnotationParser(self, entity).parse()
        return entity

    def _spec(self, entity: linking.ParsedEntity, spec: _Model) -> linking.ParsedEntity:
        groups = frozenset({_K.GROUP})
        systems = frozenset({_K.SYSTEM})
        apis = frozenset({_K.API})
        if isinstance(spec, _ComponentSpec | _ResourceSpec):
            entity = dataclasses.replace(
                entity,
                type=spec.type,
                owner=self._ref("owner", spec.owner, default=_K.GROUP, allowed=_OWNERS),
                system=self._ref("system", spec.system, default=_K.SYSTEM, allowed=systems),
                depends_on=self._refs(
                    "dependsOn", spec.dependsOn, default=_K.COMPONENT, allowed=_SERVICES
                ),
                dependency_of=self._refs(
                    "dependencyOf", spec.dependencyOf, default=_K.COMPONENT, allowed=_SERVICES
                ),
            )
        if isinstance(spec, _ComponentSpec):
            consumes = self._refs("consumesApis", spec.consumesApis, default=_K.API, allowed=apis)
            # Backstage keeps `consumesApis: [component:x]` as written; for impact it is
            # a dependency on x itself (an API's providers are found through the API).
            consumed_services = tuple(r for r in consumes if r.kind in _SERVICES)
            return dataclasses.replace(
                entity,
                depends_on=tuple(dict.fromkeys((*entity.depends_on, *consumed_services))),
                lifecycle=spec.lifecycle,
                subcomponent_of=self._ref(
                    "subcomponentOf",
                    spec.subcomponentOf,
                    default=_K.COMPONENT,
                    allowed=frozenset({_K.COMPONENT}),
                ),
                provides_apis=self._refs(
                    "providesApis", spec.providesApis, default=_K.API, allowed=apis
                ),
                consumes_apis=consumes,
            )
        if isinstance(spec, _SystemSpec):
            return dataclasses.replace(
                entity,
                owner=self._ref("owner", spec.owner, default=_K.GROUP, allowed=_OWNERS),
                domain=self._ref(
                    "domain", spec.domain, default=_K.DOMAIN, allowed=frozenset({_K.DOMAIN})
                ),
            )
        if isinstance(spec, _DomainSpec):
            return dataclasses.replace(
                entity, owner=self._ref("owner", spec.owner, default=_K.GROUP, allowed=_OWNERS)
            )
        if isinstance(spec, _ApiSpec):
            return dataclasses.replace(
                entity,
                type=spec.type,
                lifecycle=spec.lifecycle,
                owner=self._ref("owner", spec.owner, default=_K.GROUP, allowed=_OWNERS),
                system=self._ref("system", spec.system, default=_K.SYSTEM, allowed=systems),
            )
        if isinstance(spec, _GroupSpec):
            return dataclasses.replace(
                entity,
                type=spec.type,
                display_name=spec.profile.displayName,
                email=spec.profile.email,
                parent=self._ref("parent", spec.parent, default=_K.GROUP, allowed=groups),
                children=self._refs("children", spec.children, default=_K.GROUP, allowed=groups),
                members=self._refs(
                    "members", spec.members, default=_K.USER, allowed=frozenset({_K.USER})
                ),
            )
        if isinstance(spec, _UserSpec):
            return dataclasses.replace(
                entity,
                display_name=spec.profile.displayName,
                email=spec.profile.email,
                member_of=self._refs("memberOf", spec.memberOf, default=_K.GROUP, allowed=groups),
            )
        return entity


class _AnnotationParser:
    """Reads the Stormdrill and Kubernetes annotations of a Component or Resource."""

    def __init__(self, parser: _EntityParser, entity: linking.ParsedEntity) -> None:
        self.parser = parser
        self.document = parser.document
        self.entity = entity
        self.problems = parser.problems
        self.texts: dict[str, str] = {}
        for key in parser.envelope.metadata.annotations:
            path = self._path(key)
            text = self.document.texts.get(path)
            if text is None:
                self.problems.append(
                    self.document.problem(path, "an annotation value must be a string")
                )
            else:
                self.texts[key] = text

    @staticmethod
    def _path(key: str) -> documents.FieldPath:
        return ("metadata", "annotations", key)

    def _value(self, key: str, parse: Callable[[str], _T]) -> _T | None:
        text = self.texts.get(key)
        if text is None:
            return None
        try:
            return parse(text)
        except ValueError as exc:
            self.problems.append(self.document.problem(self._path(key), str(exc)))
            return None

    def _user_refs(self, key: str) -> tuple[models.EntityRef, ...]:
        text = self.texts.get(key)
        if text is None:
            return ()
        refs = []
        for raw in annotation.split_list(text):
            ref = self.parser.refs.read(
                self.document,
                self._path(key),
                raw,
                default_kind=_K.USER,
                allowed=frozenset({_K.USER}),
                namespace=self.parser.namespace,
            )
            if ref is not None:
                refs.append(ref)
        if not refs and text.strip() == "":
            self.problems.append(self.document.problem(self._path(key), "no user given"))
        return tuple(dict.fromkeys(refs))

    def parse(self) -> linking.ParsedEntity:
        self._unknown_keys()
        tier = self._value(annotation.TIER, annotation.parse_tier)
        vendor_cidrs = self._value(annotation.VENDOR_CIDRS, annotation.parse_cidrs) or ()
        vendor_ports = self._value(annotation.VENDOR_PORTS, annotation.parse_ports) or ()
        is_vendor = self.entity.kind is _K.RESOURCE and self.entity.type in VENDOR_TYPES
        vendor = None
        if is_vendor:
            vendor = models.Vendor(self.entity.ref, cidrs=vendor_cidrs, ports=vendor_ports)
            if not vendor_cidrs:
                self.problems.append(
                    self.document.problem(
                        ("metadata", "annotations"),
                        f"vendor {self.entity.ref} has no {annotation.VENDOR_CIDRS} annotation",
                        hint="third-party drills cannot cut it off without its CIDR blocks",
                        severity="warning",
                    )
                )
        else:
            for key in (annotation.VENDOR_CIDRS, annotation.VENDOR_PORTS):
                if key in self.texts:
                    self.problems.append(
                        self.document.problem(
                            self._path(key),
                            "ignored: only a Resource of type vendor or third-party is a vendor",
                            severity="warning",
                        )
                    )
        runbook_owner = self._user_refs(annotation.RUNBOOK_OWNER)
        if len(runbook_owner) > 1:
            self.problems.append(
                self.document.problem(
                    self._path(annotation.RUNBOOK_OWNER),
                    "a runbook has one owner",
                    hint=f"list the others in {annotation.RUNBOOK_EDITORS}",
                )
            )
        repo_path = self.texts.get(annotation.REPO_PATH)
        return dataclasses.replace(
            self.entity,
            tier=tier,
            objectives=self._objectives(),
            vendor=vendor,
            kubernetes=self._kubernetes(),
            aws=self._aws(),
            break_glass=self._user_refs(annotation.BREAK_GLASS),
            runbook_owner=runbook_owner[0] if runbook_owner else None,
            runbook_editors=self._user_refs(annotation.RUNBOOK_EDITORS),
            repo_path=repo_path.strip() if repo_path and repo_path.strip() else None,
        )

    def _unknown_keys(self) -> None:
        for key in self.texts:
            if not key.startswith(annotation.PREFIX):
                continue
            if key in annotation.KNOWN or annotation.is_objective(key):
                continue
            close = difflib.get_close_matches(key, sorted(annotation.KNOWN), n=1)
            hint = f"did you mean {close[0]!r}?" if close else ""
            if key.startswith((annotation.RTO, annotation.RPO)):
                hint = (
                    "write e.g. stormdrill.dev/rto.availability-zone (failure mode in kebab case)"
                )
            self.problems.append(
                self.document.problem(
                    self._path(key),
                    "unknown Stormdrill annotation; ignored",
                    hint=hint,
                    severity="warning",
                )
            )

    def _objectives(self) -> models.Objectives:
        defaults: dict[str, datetime.timedelta] = {}
        by_mode: dict[str, dict[models.FailureMode, datetime.timedelta]] = {"rto": {}, "rpo": {}}
        for key in self.texts:
            match = annotation.OBJECTIVE.match(key)
            if match is None:
                continue
            value = self._value(key, annotation.parse_duration)
            if value is None:
                continue
            if match["mode"] is None:
                defaults[match["which"]] = value
            else:
                by_mode[match["which"]][models.FailureMode(match["mode"])] = value
        return models.Objectives(
            rto=defaults.get("rto"),
            rpo=defaults.get("rpo"),
            rto_by_mode=by_mode["rto"],
            rpo_by_mode=by_mode["rpo"],
        )

    def _kubernetes(self) -> models.KubernetesPlacement:
        selector = self._value(annotation.KUBERNETES_LABEL_SELECTOR, models.LabelSelector.parse)
        if selector is None and annotation.KUBERNETES_LABEL_SELECTOR not in self.texts:
            selector = self._value(annotation.KUBERNETES_ID, _kubernetes_id_selector)
        namespaces = self._value(annotation.KUBERNETES_NAMESPACE, annotation.parse_names) or ()
        clusters = self._value(annotation.KUBERNETES_CLUSTERS, annotation.parse_names) or ()
        return models.KubernetesPlacement(
            selectors=(selector,) if selector is not None else (),
            namespaces=namespaces,
            clusters=clusters,
        )

    def _aws(self) -> models.AwsPlacement:
        return models.AwsPlacement(
            tags=self._value(annotation.AWS_TAGS, annotation.parse_tags) or {},
            regions=self._value(annotation.AWS_REGIONS, annotation.parse_names) or (),
            zones=self._value(annotation.AWS_ZONES, annotation.parse_names) or (),
            resources=self._value(annotation.AWS_RESOURCES, annotation.parse_resources) or (),
        )


def _kubernetes_id_selector(text: str) -> models.LabelSelector:
    """`backstage.io/kubernetes-id: web` selects pods labelled `backstage.io/kubernetes-id=web`."""
    return models.LabelSelector.parse(f"{annotation.KUBERNETES_ID_LABEL}={text.strip()}")


def _raw_break_glass(data: object) -> tuple[str, ...]:
    """The user names a (possibly invalid) document's break-glass annotation names.

    Read leniently (`user:default/frank`, `frank`): when an entity is refused, its
    break-glass holders must still be protected by the guardrails.
    """
    metadata = data.get("metadata") if isinstance(data, dict) else None
    notes = metadata.get("annotations") if isinstance(metadata, dict) else None
    raw = notes.get(annotation.BREAK_GLASS) if isinstance(notes, dict) else None
    if not isinstance(raw, str):
        return ()
    names = (item.rsplit(":", 1)[-1].rsplit("/", 1)[-1] for item in annotation.split_list(raw))
    return tuple(name for name in names if name)


def _written_ref(data: object, kind: models.EntityKind | None) -> models.EntityRef | None:
    """The reference a (possibly invalid) document names itself by, when it can be told."""
    if kind is None or not isinstance(data, dict):
        return None
    metadata = data.get("metadata")
    if not isinstance(metadata, dict):
        return None
    name, namespace = metadata.get("name"), metadata.get("namespace", models.DEFAULT_NAMESPACE)
    if not isinstance(name, str) or not isinstance(namespace, str):
        return None
    try:
        return models.EntityRef.parse(f"{kind.value}:{namespace}/{name}")
    except errors.RefInvalid:
        return None
