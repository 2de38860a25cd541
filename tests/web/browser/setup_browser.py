"""Set-up for the browser tests: Debian's Chromium and axe-core, installed when missing.

`ensure_chromium()` answers `/usr/bin/chromium`, running `apt-get update` and
`apt-get install -y chromium` first when it is not there (a fresh CI machine, as root).
`axe_source(cache_dir)` answers the text of `axe.min.js`, running
`npm install --no-audit --no-fund --prefix CACHE_DIR axe-core@4` once per cache folder
(an exclusive file lock makes parallel test workers install it once between them).
Either raises `SetupFailed` naming the command that failed, its output and what to do:
the browser tests never skip because the browser is missing.

Run it by hand to prepare a machine: `.venv/bin/python -m tests.web.browser.setup_browser`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from scenarios import errors

CHROMIUM = Path("/usr/bin/chromium")
AXE_PACKAGE = "axe-core@4"
AXE_SCRIPT = Path("node_modules") / "axe-core" / "axe.min.js"
DEFAULT_AXE_CACHE = Path("/tmp/stormdrill-axe")
APT_TIMEOUT_S = 900.0
NPM_TIMEOUT_S = 300.0


class SetupFailed(errors.StormdrillError):
    """Chromium or axe-core could not be installed; the message names the command and fix."""


def _run(command: Sequence[str], *, timeout_s: float, fix: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            check=False,
        )
    except FileNotFoundError as exc:
        raise SetupFailed(f"`{' '.join(command)}`: {exc.strerror}; {fix}") from None
    except subprocess.TimeoutExpired:
        raise SetupFailed(
            f"`{' '.join(command)}` did not finish within {timeout_s:.0f}s; {fix}"
        ) from None
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:]
        raise SetupFailed(
            f"`{' '.join(command)}` exited {done.returncode}; {fix}\n--- output (tail) ---\n{tail}"
        )


def ensure_chromium(executable: Path = CHROMIUM) -> Path:
    """`executable`, installing Debian's `chromium` package first when it is missing."""
    if executable.exists():
        return executable
    fix = (
        f"install Chromium by hand (as root: `apt-get update && apt-get install -y chromium`)"
        f" so that {executable} exists, then run the browser tests again"
    )
    if shutil.which("apt-get") is None:
        raise SetupFailed(f"{executable} is missing and this machine has no apt-get; {fix}")
    _run(["apt-get", "update"], timeout_s=APT_TIMEOUT_S, fix=fix)
    _run(["apt-get", "install", "-y", "chromium"], timeout_s=APT_TIMEOUT_S, fix=fix)
    if not executable.exists():
        raise SetupFailed(f"`apt-get install -y chromium` succeeded but {executable} is missing")
    return executable


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".install.lock").open("w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def axe_source(cache_dir: Path = DEFAULT_AXE_CACHE) -> str:
    """The text of axe-core's `axe.min.js`, installed with npm into `cache_dir` if needed."""
    script = cache_dir / AXE_SCRIPT
    with _locked(cache_dir):
        if not script.exists():
            fix = (
                f"install Node.js and npm (`apt-get install -y npm`) and check the npm registry"
                f" is reachable, or run `npm install --prefix {cache_dir} {AXE_PACKAGE}` by hand"
            )
            if shutil.which("npm") is None:
                raise SetupFailed(f"axe-core is not in {cache_dir} and npm is missing; {fix}")
            _run(
                [
                    "npm",
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                    str(cache_dir),
                    AXE_PACKAGE,
                ],
                timeout_s=NPM_TIMEOUT_S,
                fix=fix,
            )
            if not script.exists():
                raise SetupFailed(f"npm installed {AXE_PACKAGE} but {script} is missing")
    return script.read_text(encoding="utf-8")


def main() -> int:
    """Install both (the command-line use); 0 when ready, 1 with the reason on stderr."""
    try:
        chromium = ensure_chromium()
        source = axe_source()
    except SetupFailed as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.write(f"chromium: {chromium}\naxe-core: {len(source)} characters\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
