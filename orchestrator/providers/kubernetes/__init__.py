"""Kubernetes provider: node, pod, deployment, network and RBAC faults, each with a precise undo."""
