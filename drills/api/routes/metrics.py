"""Routes: /metrics (Prometheus text exposition)."""

from __future__ import annotations

import fastapi

router = fastapi.APIRouter()
