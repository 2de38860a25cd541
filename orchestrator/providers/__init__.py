"""Providers: actions and probes that touch Kubernetes, AWS and people, behind one registry."""
