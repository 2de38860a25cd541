"""Helpers for the benchmark tests: which child processes of this test process are alive."""

from __future__ import annotations

import os
import pathlib


def standalone_children() -> list[int]:
    """Live children of this process running `sandbox.kubernetes.standalone` (not zombies)."""
    found: list[int] = []
    for task in pathlib.Path(f"/proc/{os.getpid()}/task").iterdir():
        children = (task / "children").read_text().split()
        for pid in children:
            proc = pathlib.Path(f"/proc/{pid}")
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                continue
            if "sandbox.kubernetes.standalone" in cmdline and state != "Z":
                found.append(int(pid))
    return found
