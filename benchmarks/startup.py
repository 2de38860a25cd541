"""Start-up benchmark: how long `stormdrill` takes to start, and what it imports to do so.

Run it as `.venv/bin/python -m benchmarks.startup` (`--before DIR` also measures another
checkout of the code, e.g. `git archive HEAD | tar -x -C DIR`, with the same interpreter).
It prints a table and writes `benchmarks/results/startup-<date>.json` and
`startup-latest.json`.

What it measures, per command (`--help`, `validate FILE`, `schema`, `scenarios list`) and
for the floor `python -c "import typer, rich, pydantic, yaml"`:
- wall: the median wall time of `--repeat` runs of the process (after one warm-up run, so
  bytecode is cached), without `-X importtime`;
- imports: the median sum of every module's own import time reported by
  `python -X importtime` (what importing costs, without the interpreter's own start);
- heavy: which of the modules the CLI must not import before a command needs them
  (the sandbox, moto, flask, boto3, botocore, kubernetes, fastapi, …) were imported.

The target (issue 10): `--help` within 3x the floor's wall time. Each process runs with the
tree as its working directory (so `python -m drills.cli` imports that tree's code) and a
temporary SQLite store; nothing is written outside the temporary directory and the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

HEAVY = (
    "sandbox",
    "moto",
    "flask",
    "flask_cors",
    "boto3",
    "botocore",
    "kubernetes",
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "psycopg",
    "jinja2",
    "apscheduler",
    "httpx",
)
"""Top-level modules reported when imported (the first seven must not be, for these commands)."""
TARGET_RATIO = 3.0
"""`--help` wall time may be at most this many times the floor's."""

FLOOR = ("-c", "import typer, rich, pydantic, yaml")
CASES: Mapping[str, Sequence[str]] = {
    "floor": FLOOR,
    "help": ("-m", "drills.cli", "--help"),
    "validate": ("-m", "drills.cli", "validate", "scenarios/library/az-failure.yaml"),
    "schema": ("-m", "drills.cli", "schema"),
    "scenarios list": ("-m", "drills.cli", "scenarios", "list"),
}


@dataclasses.dataclass(frozen=True)
class Figure:
    """One command in one tree."""

    case: str
    wall_s: float
    imports_s: float
    heavy: tuple[str, ...]


def _env(tmp: pathlib.Path) -> dict[str, str]:
    env = dict(os.environ)
    env["STORMDRILL_DATABASE_URL"] = f"sqlite:///{tmp / 'runs.db'}"
    env["COLUMNS"] = "80"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run(
    argv: Sequence[str], *, tree: pathlib.Path, env: Mapping[str, str], importtime: bool
) -> tuple[float, str]:
    flags = ["-X", "importtime"] if importtime else []
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *flags, *argv],
        cwd=tree,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} in {tree} exited {done.returncode}:\n{done.stderr}")
    return elapsed, done.stderr


def parse_importtime(stderr: str) -> tuple[float, frozenset[str]]:
    """(seconds spent importing, every module imported) from `-X importtime` output."""
    total_us = 0
    names: set[str] = set()
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3:
            continue
        total_us += int(fields[0])
        names.add(fields[2].strip())
    return total_us / 1e6, frozenset(names)


def measure(tree: pathlib.Path, *, repeat: int) -> list[Figure]:
    """Every case in `tree`, `repeat` times each (after a warm-up run)."""
    figures = []
    with tempfile.TemporaryDirectory(prefix="stormdrill-startup-") as tmp:
        env = _env(pathlib.Path(tmp))
        for case, argv in CASES.items():
            _run(argv, tree=tree, env=env, importtime=False)
            walls = [_run(argv, tree=tree, env=env, importtime=False)[0] for _ in range(repeat)]
            imports: list[float] = []
            heavy: set[str] = set()
            for _ in range(repeat):
                spent, names = parse_importtime(_run(argv, tree=tree, env=env, importtime=True)[1])
                imports.append(spent)
                heavy.update(n.partition(".")[0] for n in names)
            figures.append(
                Figure(
                    case=case,
                    wall_s=round(statistics.median(walls), 4),
                    imports_s=round(statistics.median(imports), 4),
                    heavy=tuple(n for n in HEAVY if n in heavy),
                )
            )
    return figures


def _table(label: str, figures: Sequence[Figure]) -> str:
    floor = next(f for f in figures if f.case == "floor")
    lines = [
        f"{label}",
        f"  {'command':<16}{'wall s':>8}{'x floor':>9}{'imports s':>11}  heavy imports",
    ]
    for f in figures:
        ratio = f.wall_s / floor.wall_s
        lines.append(
            f"  {f.case:<16}{f.wall_s:>8.3f}{ratio:>8.1f}x{f.imports_s:>11.3f}"
            f"  {', '.join(f.heavy) or '-'}"
        )
    return "\n".join(lines)


def _target(figures: Sequence[Figure]) -> dict[str, object]:
    floor = next(f for f in figures if f.case == "floor")
    helped = next(f for f in figures if f.case == "help")
    bound = round(TARGET_RATIO * floor.wall_s, 4)
    return {
        "name": f"--help wall time within {TARGET_RATIO:g}x the floor",
        "measured": helped.wall_s,
        "bound": bound,
        "met": helped.wall_s <= bound,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=pathlib.Path, help="Another checkout to measure too.")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--results", type=pathlib.Path, default=pathlib.Path(__file__).parent / "results"
    )
    args = parser.parse_args(argv)
    here = pathlib.Path(__file__).resolve().parent.parent
    trees = {"after": here} if args.before is None else {"before": args.before, "after": here}
    measured = {label: measure(tree.resolve(), repeat=args.repeat) for label, tree in trees.items()}
    for label, figures in measured.items():
        print(_table(f"{label} ({trees[label]})", figures))
    targets = {label: _target(figures) for label, figures in measured.items()}
    for label, target in targets.items():
        print(f"{label}: {target}")
    record = {
        "benchmark": "startup",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load": os.getloadavg()[0],
        },
        "repeat": args.repeat,
        "trees": {
            label: {
                "path": str(trees[label]),
                "figures": [dataclasses.asdict(f) for f in figures],
                "target": targets[label],
            }
            for label, figures in measured.items()
        },
    }
    args.results.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=2) + "\n"
    (args.results / f"startup-{datetime.now(UTC):%Y-%m-%d}.json").write_text(text)
    (args.results / "startup-latest.json").write_text(text)


if __name__ == "__main__":
    main()
