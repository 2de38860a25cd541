"""The output vocabulary every data-printing command shares: `--format` and `-o/--output`.

`Format` is `table|json|yaml`; json and yaml are the same view (`drills.service.views`)
dumped two ways (yaml with `yaml.safe_dump`, keys in the view's order). `emit` writes
text to stdout or, with `-o FILE`, to that file (parent folders made, nothing on stdout).
`configure_logging` sets up the root options `--log-level` and `--log-format json`:
records go to stderr, one JSON object per line with the run id and step when known
(`orchestrator.logcontext`). Without those options logging stays as Python leaves it.
"""

from __future__ import annotations

import enum
import io
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import rich.console
import typer

from orchestrator import logcontext

if TYPE_CHECKING:  # only annotations: `stormdrill --help` imports this module
    from drills.service import views


class Format(enum.StrEnum):
    """What a command prints: a human table, or its view as JSON or YAML."""

    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


FORMAT_HELP = "table (for people), json or yaml (the same view, for machines)."
OUTPUT_HELP = "Write the output to this file instead of stdout."


def dump(data: object, fmt: Format) -> str:
    """JSON or YAML text of `data`, ending in a newline (`table` is the caller's to draw)."""
    if fmt is Format.YAML:
        import yaml  # only when YAML is asked for

        text: str = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        return text
    if fmt is Format.JSON:
        return json.dumps(data, indent=2) + "\n"
    raise ValueError(f"{fmt.value} is drawn by the command, not dumped")


def dump_view(view: views.View, fmt: Format) -> str:
    """The view as `--format json|yaml` prints it."""
    return dump(view.dump(), fmt)


def emit(text: str, output: Path | None) -> None:
    """Print `text` as is (no newline added), or write it to `output`."""
    if output is None:
        typer.echo(text, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")


def emit_rich(shown: Sequence[rich.console.RenderableType], output: Path | None) -> None:
    """Print rich tables and text, or write them to `output` as plain text (no colour, wide)."""
    if output is None:
        console = rich.console.Console(highlight=False)
        for item in shown:
            console.print(item)
        return
    buffer = io.StringIO()
    plain = rich.console.Console(
        file=buffer, width=FILE_WIDTH, color_system=None, highlight=False, soft_wrap=True
    )
    for item in shown:
        plain.print(item)
    emit(buffer.getvalue(), output)


FILE_WIDTH = 200
"""Columns of a table written to a file with `-o` (files have no terminal to fit)."""


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, run_id, step (and exc)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str | None] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "run_id": getattr(record, "run_id", None),
            "step": getattr(record, "step", None),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line)


def configure_logging(level: LogLevel | None, fmt: LogFormat | None) -> None:
    """Send log records to stderr at `level` (default warning) in `fmt` (default text).

    Does nothing when neither is given. Called once per process by the root command.
    """
    if level is None and fmt is None:
        return
    handler = _StderrHandler()
    handler.addFilter(logcontext.ContextFilter())
    if fmt is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel((level or LogLevel.WARNING).value.upper())


_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [run %(run_id)s, step %(step)s] %(message)s"


class _StderrHandler(logging.Handler):
    """Writes to whatever `sys.stderr` is when a record arrives (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # logging must never break the command
            self.handleError(record)
