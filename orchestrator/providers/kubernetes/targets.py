"""Targets: resolve scenario selectors into nodes, pods, workloads, namespaces and RBAC subjects.

Invariants:
- Resolving only reads. Selector criteria AND together: `labels` (label selector), `fields`
  (field selector) and `names`; the population is the pool picked from (all nodes, the pods /
  deployments of the namespace, all namespaces, every subject named in a binding).
- The orchestrator's own node, pod and namespace (`spec.orchestrator`) are never selected;
  they are listed in `excluded` with the reason.
- Service hints: for nodes, one per (namespace, pod labels) of the pods running there, with
  the node's zone; for pods and workloads, their (template) labels.
- Each kind is listed once per resolve, paginated. Nodes and pods go through `listing`
  (slim facts, shared within a dry-run planning pass, all pods listed at most once for node
  hints): a pod target's labels and fields are selected by the server unless the pass
  already holds the namespace's pods; a node target's labels are matched on the pass's node
  listing (which the node count, its population, needs anyway), its fields by the server.
- Namespace opt-in: a namespace takes drills only when labelled
  `stormdrill.dev/allow-drills=true` (`opted_out_namespaces` lists the others).
- A subject target's `namespaces:` is carried on its selection (`Selection.namespaces`):
  planning leaves the subject's bindings elsewhere alone, on purpose and said so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from orchestrator import errors, mutations, registry
from orchestrator import targets as selections
from orchestrator.providers.kubernetes import connection, listing, objects
from scenarios import models

ZONE_LABEL = "topology.kubernetes.io/zone"
ALLOW_DRILLS_LABEL = "stormdrill.dev/allow-drills"
VOLATILE_LABELS = frozenset(
    {"pod-template-hash", "controller-revision-hash", "statefulset.kubernetes.io/pod-name"}
)
RBAC_GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = {"user": "User", "group": "Group", "serviceaccount": "ServiceAccount"}


def label_selector(labels: Mapping[str, str]) -> str:
    return listing.label_selector(labels)


def field_selector(fields: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(fields.items()))


def stable_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Labels minus the per-incarnation ones a controller adds (`pod-template-hash`, …)."""
    return {k: v for k, v in labels.items() if k not in VOLATILE_LABELS}


def namespace_opted_in(conn: connection.KubeConnection, namespace: str) -> bool:
    """Whether `namespace` is labelled `stormdrill.dev/allow-drills=true`."""
    found = objects.read(
        conn, mutations.TargetRef(provider=connection.PROVIDER, kind="namespace", name=namespace)
    )
    return found is not None and objects.labels_of(found).get(ALLOW_DRILLS_LABEL) == "true"


def opted_in_namespaces(ctx: registry.ProviderContext, namespaces: Sequence[str]) -> list[str]:
    """The namespaces of `namespaces` labelled `stormdrill.dev/allow-drills=true` (sorted)."""
    conn = connection.from_context(ctx)
    return sorted(ns for ns in set(namespaces) if namespace_opted_in(conn, ns))


def opted_out_namespaces(ctx: registry.ProviderContext, namespaces: Iterable[str]) -> list[str]:
    """The namespaces of `namespaces` that have not opted in to drills (sorted)."""
    conn = connection.from_context(ctx)
    return sorted(ns for ns in set(namespaces) if not namespace_opted_in(conn, ns))


def zones_of_nodes(conn: connection.KubeConnection) -> dict[str, str | None]:
    answer = conn.call("nodes", conn.core.list_node)
    return {objects.name_of(n): objects.labels_of(n).get(ZONE_LABEL) for n in objects.items(answer)}


@dataclasses.dataclass(frozen=True)
class Subject:
    """An RBAC subject: `User:alice`, `Group:team-payments`, `ServiceAccount:ns/name`."""

    kind: str
    name: str
    namespace: str | None = None

    @classmethod
    def parse(cls, text: str) -> Subject:
        kind_text, sep, rest = text.partition(":")
        if not sep:
            kind_text, rest = "User", text
        kind = SUBJECT_KINDS.get(kind_text.strip().lower())
        if kind is None or not rest.strip():
            raise errors.ProviderPermanent(
                f"subject {text!r}: write 'User:<name>', 'Group:<name>',"
                " 'ServiceAccount:<namespace>/<name>' or a bare user name"
            )
        namespace = None
        if kind == "ServiceAccount":
            namespace, slash, rest = rest.partition("/")
            if not slash:
                raise errors.ProviderPermanent(
                    f"subject {text!r}: write a ServiceAccount as"
                    " 'ServiceAccount:<namespace>/<name>'"
                )
        return cls(kind=kind, name=rest.strip(), namespace=namespace)

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Subject:
        return cls(
            kind=str(raw.get("kind")), name=str(raw.get("name")), namespace=raw.get("namespace")
        )

    def matches(self, raw: Mapping[str, Any]) -> bool:
        return Subject.of(raw) == self

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind}:{self.namespace}/{self.name}"
        return f"{self.kind}:{self.name}"


def subject_of_ref(ref: mutations.TargetRef) -> Subject:
    """The RBAC subject a target names: a `subject`, or a person / team of the people provider."""
    if ref.kind == "subject":
        return Subject.parse(ref.name)
    last = ref.name.rsplit("/", 1)[-1].split(":")[-1]
    if ref.kind == "person":
        return Subject(kind="User", name=last)
    if ref.kind == "team":
        return Subject(kind="Group", name=last)
    raise errors.ProviderPermanent(f"{ref} is not an RBAC subject, person or team")


_Named = TypeVar("_Named")


def _name(item: listing.NodeFacts | listing.PodFacts) -> str:
    return item.name


def _named(
    found: Iterable[_Named], target: models.Target, name_of: Callable[[_Named], str]
) -> list[_Named]:
    """Of `found`, those `target.selector.names` names (all when it names none)."""
    if not target.selector.names:
        return list(found)
    wanted = set(target.selector.names)
    return [item for item in found if name_of(item) in wanted]


class _Hints:
    """Service hints in first-seen order, one per (namespace, label map, zone) built once.

    Pods of one workload share one interned label map (`listing`), so 50,000 pods make a few
    hundred hints, not 50,000 (the selection de-duplicates equal hints as before)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str | None, int, str | None], selections.ServiceHint] = {}
        self._keep: list[listing.Labels] = []  # keeps each id() above alive and unique

    def add(self, namespace: str | None, labels: listing.Labels, zone: str | None) -> None:
        key = (namespace, id(labels), zone)
        if key not in self._seen:
            self._keep.append(labels)
            self._seen[key] = selections.ServiceHint.of(
                provider=connection.PROVIDER,
                namespace=namespace,
                labels=stable_labels(labels),
                zone=zone,
            )

    @property
    def found(self) -> list[selections.ServiceHint]:
        return list(self._seen.values())


class KubernetesResolver(registry.TargetResolver):
    """Resolves kubernetes targets of every kind this provider knows."""

    provider: ClassVar[str] = connection.PROVIDER
    kinds: ClassVar[frozenset[str]] = frozenset(
        {"node", "pod", "deployment", "statefulset", "namespace", "subject"}
    )

    def resolve(
        self, ctx: registry.ProviderContext, *, name: str, target: models.Target
    ) -> selections.Selection:
        conn = connection.from_context(ctx)
        if target.kind == "subject":
            return self._subjects(conn, name=name, target=target)
        if target.kind == "node":
            return self._nodes(ctx, conn, name=name, target=target)
        if target.kind == "namespace":
            return self._namespaces(ctx, conn, name=name, target=target)
        if target.kind in ("deployment", "statefulset"):
            return self._workloads(conn, name=name, target=target)
        if target.kind == "pod":
            return self._pods(ctx, conn, name=name, target=target)
        raise errors.ProviderPermanent(
            f"target {name}: kubernetes targets of kind {target.kind!r} are not supported"
        )

    # ----- helpers ---------------------------------------------------------------------
    @staticmethod
    def _list(
        conn: connection.KubeConnection,
        *,
        what: str,
        method: Any,
        target: models.Target,
        namespace: str | None = None,
    ) -> tuple[list[connection.KubeObject], int]:
        """(selected objects, population) for `target`'s selector (kinds a cluster has few of:
        one paginated list, labels matched client-side, fields by the server)."""
        args = (namespace,) if namespace is not None else ()
        population = listing.all_objects(conn, what, method, *args)
        if target.selector.fields:
            selected = listing.all_objects(
                conn,
                what,
                method,
                *args,
                label_selector=label_selector(target.selector.labels) or None,
                field_selector=field_selector(target.selector.fields),
            )
        else:
            wanted = tuple(target.selector.labels.items())
            selected = [
                o for o in population if all(objects.labels_of(o).get(k) == v for k, v in wanted)
            ]
        return sorted(_named(selected, target, objects.name_of), key=objects.name_of), len(
            population
        )

    @staticmethod
    def _namespace(target: models.Target, name: str) -> str:
        if not target.namespace:
            raise errors.ProviderPermanent(
                f"target {name}: {target.kind} targets need 'namespace:' (e.g. 'namespace: shop')"
            )
        return target.namespace

    @staticmethod
    def _selection(
        name: str,
        target: models.Target,
        refs: Sequence[mutations.TargetRef],
        *,
        population: int,
        hints: Iterable[selections.ServiceHint] = (),
        excluded: Sequence[tuple[mutations.TargetRef, str]] = (),
    ) -> selections.Selection:
        unique = tuple(dict.fromkeys(hints))
        return selections.Selection(
            name=name,
            provider=connection.PROVIDER,
            kind=target.kind,
            refs=tuple(refs),
            population=population,
            hints=unique,
            excluded=tuple(excluded),
            namespaces=tuple(sorted(set(target.namespaces))),
        )

    # ----- kinds -----------------------------------------------------------------------
    def _nodes(
        self,
        ctx: registry.ProviderContext,
        conn: connection.KubeConnection,
        *,
        name: str,
        target: models.Target,
    ) -> selections.Selection:
        everyone = listing.all_nodes(ctx, conn)
        if target.selector.fields:
            chosen = listing.list_nodes(
                conn,
                label_selector=label_selector(target.selector.labels) or None,
                field_selector=field_selector(target.selector.fields),
            )
        else:
            chosen = listing.matching(everyone, target.selector.labels)
        selected = sorted(_named(chosen, target, _name), key=_name)
        me = ctx.environment.spec.orchestrator
        own_node = me.node_name if me is not None else None
        refs: list[mutations.TargetRef] = []
        excluded: list[tuple[mutations.TargetRef, str]] = []
        zones: dict[str, str | None] = {}
        for node in selected:
            ref = node.ref
            if own_node and ref.name == own_node:
                excluded.append(
                    (ref, "the orchestrator runs on this node (spec.orchestrator.nodeName)")
                )
                continue
            refs.append(ref)
            zones[ref.name] = node.labels.get(ZONE_LABEL)
        hints = _Hints()
        on_node = listing.pods_on_nodes(ctx, conn, [ref.name for ref in refs]) if refs else {}
        for node_name, pods in on_node.items():
            for pod in pods:
                hints.add(pod.namespace, pod.labels, zones[node_name])
        return self._selection(
            name, target, refs, population=len(everyone), hints=hints.found, excluded=excluded
        )

    def _pods(
        self,
        ctx: registry.ProviderContext,
        conn: connection.KubeConnection,
        *,
        name: str,
        target: models.Target,
    ) -> selections.Selection:
        namespace = self._namespace(target, name)
        chosen, population = listing.selected_pods(
            ctx,
            conn,
            namespace,
            labels=target.selector.labels,
            fields=field_selector(target.selector.fields),
        )
        selected = sorted(_named(chosen, target, _name), key=_name)
        me = ctx.environment.spec.orchestrator
        zones = (
            {node.name: node.labels.get(ZONE_LABEL) for node in listing.all_nodes(ctx, conn)}
            if selected
            else {}
        )
        refs: list[mutations.TargetRef] = []
        excluded: list[tuple[mutations.TargetRef, str]] = []
        hints = _Hints()
        for pod in selected:
            ref = pod.ref
            if (
                me is not None
                and me.pod_name == ref.name
                and (me.namespace is None or me.namespace == ref.namespace)
            ):
                excluded.append((ref, "this is the orchestrator's own pod (spec.orchestrator)"))
                continue
            refs.append(ref)
            hints.add(namespace, pod.labels, zones.get(str(pod.node)))
        return self._selection(
            name, target, refs, population=population, hints=hints.found, excluded=excluded
        )

    def _workloads(
        self, conn: connection.KubeConnection, *, name: str, target: models.Target
    ) -> selections.Selection:
        namespace = self._namespace(target, name)
        method = (
            conn.apps.list_namespaced_deployment
            if target.kind == "deployment"
            else conn.apps.list_namespaced_stateful_set
        )
        selected, population = self._list(
            conn,
            what=f"{target.kind}s in {namespace}",
            method=method,
            target=target,
            namespace=namespace,
        )
        refs = [objects.ref_of(obj, kind=target.kind) for obj in selected]
        hints = [
            selections.ServiceHint.of(
                provider=connection.PROVIDER,
                namespace=namespace,
                labels=stable_labels(
                    {
                        str(k): str(v)
                        for k, v in (
                            ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
                        )
                        .get("labels", {})
                        .items()
                    }
                    or objects.labels_of(obj)
                ),
            )
            for obj in selected
        ]
        return self._selection(name, target, refs, population=population, hints=hints)

    def _namespaces(
        self,
        ctx: registry.ProviderContext,
        conn: connection.KubeConnection,
        *,
        name: str,
        target: models.Target,
    ) -> selections.Selection:
        selected, population = self._list(
            conn, what="namespaces", method=conn.core.list_namespace, target=target
        )
        me = ctx.environment.spec.orchestrator
        refs: list[mutations.TargetRef] = []
        excluded: list[tuple[mutations.TargetRef, str]] = []
        for obj in selected:
            ref = objects.ref_of(obj, kind="namespace")
            if me is not None and me.namespace == ref.name:
                excluded.append((ref, "the orchestrator runs in this namespace"))
                continue
            refs.append(ref)
        hints = [
            selections.ServiceHint.of(provider=connection.PROVIDER, namespace=ref.name)
            for ref in refs
        ]
        return self._selection(
            name, target, refs, population=population, hints=hints, excluded=excluded
        )

    def _subjects(
        self, conn: connection.KubeConnection, *, name: str, target: models.Target
    ) -> selections.Selection:
        if target.selector.labels or target.selector.fields or not target.selector.names:
            raise errors.ProviderPermanent(
                f"target {name}: subject targets are selected by 'names' only"
                " (e.g. names: ['User:alice', 'Group:team-payments'])"
            )
        wanted = [Subject.parse(text) for text in target.selector.names]
        bindings = objects.items(
            conn.call("rolebindings", conn.rbac.list_role_binding_for_all_namespaces)
        ) + objects.items(conn.call("clusterrolebindings", conn.rbac.list_cluster_role_binding))
        everyone: set[Subject] = set()
        namespaces: dict[Subject, set[str | None]] = {}
        for binding in bindings:
            namespace = (binding.get("metadata") or {}).get("namespace")
            for raw in binding.get("subjects") or []:
                subject = Subject.of(raw)
                everyone.add(subject)
                namespaces.setdefault(subject, set()).add(namespace)
        refs = [
            mutations.TargetRef(provider=connection.PROVIDER, kind="subject", name=str(subject))
            for subject in wanted
            if subject in everyone
        ]
        narrowed = set(target.namespaces)
        hints = [
            selections.ServiceHint.of(provider=connection.PROVIDER, namespace=namespace)
            for subject in wanted
            for namespace in sorted(namespaces.get(subject, set()), key=lambda n: n or "")
            if not narrowed or namespace in narrowed
        ]
        return self._selection(name, target, refs, population=len(everyone), hints=hints)
