"""Tests of the people provider, manual steps and recovery objectives (RTO, RPO canaries)."""
