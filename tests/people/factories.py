"""Factories for people tests: a small catalog built in code, git repositories with authors."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.cmdb import models as cmdb

_HERE = cmdb.SourceLocation(file="test", line=1)
T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


def user(name: str) -> cmdb.EntityRef:
    return cmdb.EntityRef(cmdb.EntityKind.USER, "default", name)


def group(name: str) -> cmdb.EntityRef:
    return cmdb.EntityRef(cmdb.EntityKind.GROUP, "default", name)


def rotation(name: str, *layers: cmdb.Layer, team: cmdb.EntityRef | None = None) -> cmdb.Rotation:
    return cmdb.Rotation(
        name=cmdb.RotationName(name), layers=tuple(layers), source=_HERE, team=team
    )


def layer(name: str, *members: str, overrides: Sequence[cmdb.Override] = ()) -> cmdb.Layer:
    return cmdb.Layer(
        name=name, members=tuple(user(m) for m in members), overrides=tuple(overrides)
    )


class GitRepo:
    """A git repository in a tmp dir; each commit is made as a given author."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._git("init", "-q", "-b", "main")

    def _git(self, *args: str, author: str = "nobody") -> None:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": author,
            "GIT_AUTHOR_EMAIL": f"{author}@shop.example",
            "GIT_COMMITTER_NAME": author,
            "GIT_COMMITTER_EMAIL": f"{author}@shop.example",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        subprocess.run(
            ["git", "-C", str(self.root), *args], check=True, env=env, capture_output=True
        )

    def commit(self, author: str, files: dict[str, str]) -> None:
        for path, text in files.items():
            target = self.root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            self._git("add", path, author=author)
        self._git("commit", "-q", "-m", f"change by {author}", author=author)

    def remove(self, author: str, path: str) -> None:
        self._git("rm", "-q", path, author=author)
        self._git("commit", "-q", "-m", f"remove {path}", author=author)
