"""Rewrite the post-mortem golden file: `python -m tests.reports.update_golden`.

The only way the golden file changes. A test run never writes it: the golden test compares,
and fails outright if `STORMDRILL_UPDATE_GOLDEN` is set under `CI`, so a pipeline can never
bless its own output. Run this by hand, read the diff, and commit it with the change that
caused it.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

from reports import evidence, postmortem, rendering
from tests.reports import factories

GOLDEN = Path(__file__).parent / "golden" / "postmortem.md"

log = logging.getLogger(__name__)


def fixed_run_markdown(workdir: Path) -> str:
    """The Markdown post-mortem of the fixed run the golden file holds (built under workdir)."""
    store = factories.open_store(workdir)
    try:
        run = factories.record_run(store)
        catalog = factories.write_catalog(workdir / "cmdb")
        scenario = factories.scenario(workdir / "scenario")
        report = postmortem.build_postmortem(evidence.load(store, run.id), scenario, cmdb=catalog)
    finally:
        store.close()
    return rendering.to_markdown(report)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="stormdrill-golden-") as workdir:
        markdown = fixed_run_markdown(Path(workdir))
    if GOLDEN.exists() and GOLDEN.read_text(encoding="utf-8") == markdown:
        log.info("%s is up to date", GOLDEN)
        return 0
    GOLDEN.write_text(markdown, encoding="utf-8")
    log.info("rewrote %s; review `git diff %s` before committing it", GOLDEN, GOLDEN)
    return 0


if __name__ == "__main__":
    sys.exit(main())
