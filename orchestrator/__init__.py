"""The drill engine: run state machine, journal, guardrails, probes, rollback, recovery.

Also owns the CMDB model (`orchestrator.cmdb`) and the providers
(`orchestrator.providers.{kubernetes,aws,people}`), the only modules allowed to
import the `kubernetes` and `boto3` SDKs.
"""
