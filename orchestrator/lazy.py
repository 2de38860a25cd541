"""Lazy modules: an SDK imported on first use, not when the provider module is imported.

The Kubernetes client and boto3 take most of a second to import; `stormdrill validate`,
`schema` and `scenarios list` load every provider (for the catalog of actions and probes)
but never call an SDK. A provider binds `k8s_client = lazy.Module("kubernetes.client")` at
module level and uses it like the module; the import happens at the first attribute read
(under Python's import lock, so concurrent first uses are safe). Nothing is put in
`sys.modules` until then. Type checkers see the real module (`if TYPE_CHECKING:` imports).
"""

from __future__ import annotations

import importlib
from typing import Any


class Module:
    """A stand-in for the module `name`, imported when an attribute is first read."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"
