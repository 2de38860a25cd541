"""Scenarios: short Kubernetes and AWS drills written for the crash-safety suite.

Each touches every kind of fault its provider leaves (cordon, taint, scale, NetworkPolicy,
RBAC; subnet isolation, stopped instances, ASG zone removal, SG egress, IAM suspension) and
holds them for a short wait, so kill points land before, during and after injection and
during rollback. They carry no steady-state probes: the suite judges the world itself.
"""

from __future__ import annotations

import pathlib

KUBERNETES = """\
apiVersion: stormdrill.dev/v1
kind: Scenario
metadata:
  name: crash-kube
spec:
  description: Cordon, taint, scale, deny egress and revoke a subject, briefly.
  failureMode: dependency
  hypothesis: Nothing is left behind, whatever happens to the orchestrator.
  targets:
    nodes:
      provider: kubernetes
      kind: node
      selector:
        names: [node-us-east-1a-1, node-us-east-1b-1]
      blastRadius:
        max: 2
    inventory:
      provider: kubernetes
      kind: deployment
      namespace: shop
      selector:
        names: [inventory]
      blastRadius:
        max: 1
    payments:
      provider: kubernetes
      kind: deployment
      namespace: shop
      selector:
        names: [payments]
      blastRadius:
        max: 1
    alice:
      provider: kubernetes
      kind: subject
      selector:
        names: ["User:alice"]
      blastRadius:
        max: 1
  guardrails:
    environments: [sandbox]
    maxDuration: 30m
  steps:
    - name: cordon
      action: kubernetes.nodes.cordon
      target: nodes
    - name: taint
      action: kubernetes.nodes.taint
      target: nodes
      with:
        key: stormdrill.dev/crash
        value: drill
        effect: NoSchedule
    - name: scale-inventory
      action: kubernetes.deployment.scale
      target: inventory
      with:
        replicas: 1
    - name: cut-vendor
      action: kubernetes.network.deny-egress
      target: payments
      with:
        cidr: 203.0.113.0/24
        port: 443
    - name: revoke-alice
      action: kubernetes.rbac.revoke-subject
      target: alice
    - name: hold
      wait: 10s
"""

AWS = """\
apiVersion: stormdrill.dev/v1
kind: Scenario
metadata:
  name: crash-aws
spec:
  description: Isolate a zone, stop its instances, shrink the ASG, cut egress, suspend a user.
  failureMode: availability-zone
  hypothesis: Nothing is left behind, whatever happens to the orchestrator.
  targets:
    subnets:
      provider: aws
      kind: subnet
      selector:
        zone: us-east-1a
        tags:
          stormdrill:allow: "true"
      blastRadius:
        max: 1
    instances:
      provider: aws
      kind: instance
      selector:
        zone: us-east-1a
        tags:
          app: checkout
          stormdrill:allow: "true"
      blastRadius:
        max: 2
    web-asg:
      provider: aws
      kind: autoscaling-group
      selector:
        names: [shop-web-asg]
      blastRadius:
        max: 1
    payments-sg:
      provider: aws
      kind: security-group
      selector:
        names: [shop-payments]
      blastRadius:
        max: 1
    bob:
      provider: aws
      kind: iam-user
      selector:
        names: [bob]
      blastRadius:
        max: 1
  guardrails:
    environments: [sandbox]
    maxDuration: 30m
  steps:
    - name: isolate
      action: aws.network.isolate-subnets
      target: subnets
    - name: stop
      action: aws.ec2.stop-instances
      target: instances
    - name: remove-zone
      action: aws.autoscaling.remove-zone
      target: web-asg
      with:
        zone: us-east-1a
        suspendProcesses: [AZRebalance, Launch]
    - name: cut-vendor
      action: aws.network.deny-egress
      target: payments-sg
      with:
        cidr: 203.0.113.0/24
        port: 443
    - name: suspend-bob
      action: aws.iam.suspend-access
      target: bob
    - name: hold
      wait: 10s
"""


def write(directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Write both scenarios into `directory`; (kubernetes file, aws file)."""
    kube = directory / "crash-kube.yaml"
    aws = directory / "crash-aws.yaml"
    kube.write_text(KUBERNETES, encoding="utf-8")
    aws.write_text(AWS, encoding="utf-8")
    return kube, aws
