"""Built-in providers: one registry with every action, probe, resolver and sweeper we ship."""

from __future__ import annotations

from orchestrator import canary, probes, registry
from orchestrator.providers.aws import plugin as aws_plugin
from orchestrator.providers.kubernetes import plugin as kubernetes_plugin
from orchestrator.providers.people import plugin as people_plugin


def registry_with_builtins() -> registry.Registry:
    """A fresh registry with the Kubernetes, AWS and people providers and the generic probes."""
    reg = registry.Registry()
    probes.register(reg)
    kubernetes_plugin.register(reg)
    aws_plugin.register(reg)
    people_plugin.register(reg)
    canary.register(reg)
    return reg
