"""Targets: resolve scenario selectors into nodes, pods, workloads, namespaces and RBAC subjects.

Invariants:
- Resolving only reads. Selector criteria AND together: `labels` (label selector), `fields`
  (field selector) and `names`; the population is the pool picked from (all nodes, the pods /
  deployments of the namespace, all namespaces, every subject named in a binding).
- The orchestrator's own node, pod and namespace (`spec.orchestrator`) are never selected;
  they are listed in `excluded` with the reason.
- Service hints: for nodes, one per (namespace, pod labels) of the pods running there, with
  the node's zone; for pods and workloads, their (template) labels.
- Each kind is listed once per resolve (label selectors matched client-side; only field
  selectors go to the server); nodes and pods through `listing`, which shares them within a
  dry-run planning pass and lists all pods at most once for node hints.
- Namespace opt-in: a namespace takes drills only when labelled
  `stormdrill.dev/allow-drills=true` (`opted_out_namespaces` lists the others).
- A subject target's `namespaces:` is carried on its selection (`Selection.namespaces`):
  planning leaves the subject's bindings elsewhere alone, on purpose and said so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

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
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


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
        """(selected objects, population) for `target`'s selector."""
        args = (namespace,) if namespace is not None else ()
        population = objects.items(conn.call(what, method, *args))
        return KubernetesResolver._select(
            conn, what=what, method=method, target=target, population=population, args=args
        )

    @staticmethod
    def _select(
        conn: connection.KubeConnection,
        *,
        what: str,
        method: Any,
        target: models.Target,
        population: list[connection.KubeObject],
        args: tuple[str, ...] = (),
    ) -> tuple[list[connection.KubeObject], int]:
        """(selected objects, population): labels matched client-side, fields by the server."""
        if target.selector.fields:
            selected = objects.items(
                conn.call(
                    what,
                    method,
                    *args,
                    label_selector=label_selector(target.selector.labels) or None,
                    field_selector=field_selector(target.selector.fields),
                )
            )
        else:
            selected = listing.matching(population, target.selector.labels)
        if target.selector.names:
            wanted = set(target.selector.names)
            selected = [o for o in selected if objects.name_of(o) in wanted]
        return sorted(selected, key=objects.name_of), len(population)

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
        selected, population = self._select(
            conn,
            what="nodes",
            method=conn.core.list_node,
            target=target,
            population=listing.all_nodes(ctx, conn),
        )
        me = ctx.environment.spec.orchestrator
        own_node = me.node_name if me is not None else None
        refs: list[mutations.TargetRef] = []
        excluded: list[tuple[mutations.TargetRef, str]] = []
        zones: dict[str, str | None] = {}
        for node in selected:
            ref = objects.ref_of(node, kind="node")
            if own_node and ref.name == own_node:
                excluded.append(
                    (ref, "the orchestrator runs on this node (spec.orchestrator.nodeName)")
                )
                continue
            refs.append(ref)
            zones[ref.name] = objects.labels_of(node).get(ZONE_LABEL)
        hints: list[selections.ServiceHint] = []
        on_node = listing.pods_on_nodes(ctx, conn, [ref.name for ref in refs]) if refs else {}
        for node_name, pods in on_node.items():
            for pod in pods:
                hints.append(
                    selections.ServiceHint.of(
                        provider=connection.PROVIDER,
                        namespace=(pod.get("metadata") or {}).get("namespace"),
                        labels=stable_labels(objects.labels_of(pod)),
                        zone=zones[node_name],
                    )
                )
        return self._selection(
            name, target, refs, population=population, hints=hints, excluded=excluded
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
        selected, population = self._select(
            conn,
            what=f"pods in {namespace}",
            method=conn.core.list_namespaced_pod,
            target=target,
            population=listing.namespace_pods(ctx, conn, namespace),
            args=(namespace,),
        )
        me = ctx.environment.spec.orchestrator
        zones = (
            {
                objects.name_of(n): objects.labels_of(n).get(ZONE_LABEL)
                for n in listing.all_nodes(ctx, conn)
            }
            if selected
            else {}
        )
        refs: list[mutations.TargetRef] = []
        excluded: list[tuple[mutations.TargetRef, str]] = []
        hints: list[selections.ServiceHint] = []
        for pod in selected:
            ref = objects.ref_of(pod, kind="pod")
            if (
                me is not None
                and me.pod_name == ref.name
                and (me.namespace is None or me.namespace == ref.namespace)
            ):
                excluded.append((ref, "this is the orchestrator's own pod (spec.orchestrator)"))
                continue
            refs.append(ref)
            hints.append(
                selections.ServiceHint.of(
                    provider=connection.PROVIDER,
                    namespace=namespace,
                    labels=stable_labels(objects.labels_of(pod)),
                    zone=zones.get(str((pod.get("spec") or {}).get("nodeName"))),
                )
            )
        return self._selection(
            name, target, refs, population=population, hints=hints, excluded=excluded
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
