"""Truck factor from git history: degree of authorship and the greedy removal heuristic."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.providers.people import errors, truckfactor
from tests.people import factories


def _files(repo: factories.GitRepo, path: str) -> dict[str, frozenset[str]]:
    return truckfactor.authorship(truckfactor.read_history(repo.root, path))


def test_one_author_of_most_files_gives_a_truck_factor_of_one(tmp_path: Path) -> None:
    repo = factories.GitRepo(tmp_path / "repo")
    repo.commit("alice", {"svc/a.py": "a", "svc/b.py": "b", "svc/c.py": "c"})
    repo.commit("bob", {"svc/d.py": "d"})

    found = truckfactor.truck_factor(_files(repo, "svc"))

    assert (found.value, found.files, found.removed) == (1, 4, ("alice@shop.example",))


def test_two_authors_sharing_the_files_give_a_truck_factor_of_two(tmp_path: Path) -> None:
    repo = factories.GitRepo(tmp_path / "repo")
    repo.commit("alice", {"svc/a.py": "a", "svc/b.py": "b"})
    repo.commit("bob", {"svc/c.py": "c", "svc/d.py": "d"})

    assert truckfactor.truck_factor(_files(repo, "svc")).value == 2


def test_the_absent_author_is_removed_first_and_the_factor_drops_below_two(
    tmp_path: Path,
) -> None:
    repo = factories.GitRepo(tmp_path / "repo")
    repo.commit("alice", {"svc/a.py": "a", "svc/b.py": "b"})
    repo.commit("bob", {"svc/c.py": "c", "svc/d.py": "d"})

    after = truckfactor.truck_factor(_files(repo, "svc"), already_gone={"alice@shop.example"})

    assert (after.value, after.removed) == (1, ("bob@shop.example",))


def test_many_later_changes_by_another_author_take_authorship_over(tmp_path: Path) -> None:
    repo = factories.GitRepo(tmp_path / "repo")
    repo.commit("alice", {"svc/a.py": "v0"})
    for version in range(1, 13):
        repo.commit("bob", {"svc/a.py": f"v{version}"})

    [history] = truckfactor.read_history(repo.root, "svc")

    assert history.creator == "alice@shop.example"
    assert history.commits == {"alice@shop.example": 1, "bob@shop.example": 12}
    assert truckfactor.authors(history) == {"bob@shop.example"}


def test_only_files_still_present_and_under_the_path_count(tmp_path: Path) -> None:
    repo = factories.GitRepo(tmp_path / "repo")
    repo.commit("alice", {"svc/a.py": "a", "svc/gone.py": "x", "other/z.py": "z"})
    repo.remove("alice", "svc/gone.py")

    assert set(_files(repo, "svc")) == {"svc/a.py"}


def test_a_folder_that_is_not_a_repository_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(errors.GitFailed, match="git repository"):
        truckfactor.read_history(tmp_path, "svc")
