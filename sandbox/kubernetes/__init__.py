"""Kubernetes sandbox: a stateful loopback API server, its store, a controller loop and the seed.

`store.ClusterStore` is the single source of truth; `server.KubeApiServer` speaks the Kubernetes
REST dialect over HTTP for the official client and kubectl; `controller.Controller` gives drills
real effects (replicas kept, pods rescheduled, PDB status current); `seed` builds the shop world
of docs/sandbox-world.md; `kubectl.ensure_kubectl` fetches a static kubectl binary for tests.
"""
