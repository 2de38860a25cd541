"""Two-person approvals of runs in protected environments (skeleton: issue 13).

Contract (the helper owning this module fills in the bodies and adds what else it needs):
- `required(environment) -> int`: distinct approvers a run there needs (0: not protected).
- `open_request(store, run, *, requester, plan_hash, config)`: a submitted run now awaits approval.
- `ready(store, run_id, *, plan_hash, now) -> bool`: may the run start (enough valid approvals
  for this exact plan, none expired, none by the requester)?
- `approvers(store, run_id) -> tuple[str, ...]`: the names handed to the engine's guardrail.
"""

from __future__ import annotations
