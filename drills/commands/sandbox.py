"""`stormdrill sandbox`: run the local sandbox (Kubernetes API, moto, the shop) in the foreground.

`up` blocks until Ctrl-C or SIGTERM, then stops every part and exits 0. Readiness is
signalled by `STATE_DIR/sandbox.json`, written last and removed first on shutdown.
Also runnable on its own: `python -m drills.commands.sandbox up --state-dir DIR`.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType

import rich.console
import rich.table
import typer

from sandbox import stack

app = typer.Typer(help="Run the local sandbox world (the small shop) for demos and tests.")

log = logging.getLogger(__name__)


def _summary(info: stack.SandboxInfo) -> rich.table.Table:
    table = rich.table.Table(title="Stormdrill sandbox", show_header=True)
    table.add_column("part")
    table.add_column("where")
    table.add_row("Kubernetes API", info.kube_server)
    table.add_row("kubeconfig", f"{info.kubeconfig} (context {stack.CONTEXT})")
    table.add_row("AWS (moto)", f"{info.aws_endpoint_url} ({info.region})")
    table.add_row("Prometheus API", info.prometheus_url)
    for service, url in info.health.items():
        table.add_row(f"health: {service}", url)
    table.add_row("environment", str(info.environment))
    table.add_row("kill switch file", str(info.kill_switch))
    return table


def _install_stop_handlers(stop: threading.Event) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001 - signal API
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


@app.command()
def up(
    state_dir: Path = typer.Option(
        ..., "--state-dir", help="Directory for kubeconfig, environment.yaml and sandbox.json."
    ),
    kube_latency: float = typer.Option(
        0.0, "--kube-latency", min=0.0, help="Extra seconds the Kubernetes API waits per request."
    ),
) -> None:
    """Start the sandbox and keep it running until Ctrl-C or SIGTERM."""
    console = rich.console.Console()
    stop = threading.Event()
    _install_stop_handlers(stop)
    with console.status("starting the sandbox…"):
        sandbox = stack.Sandbox(state_dir, kube_latency_s=kube_latency)
        info = sandbox.start()
    try:
        console.print(_summary(info))
        console.print(
            f"[green]ready[/green]: {info.state_dir / stack.INFO_FILE} written; "
            "Ctrl-C or SIGTERM stops the sandbox."
        )
        while not stop.wait(0.5):
            pass
    finally:
        console.print("stopping the sandbox…")
        sandbox.stop()
    console.print("[green]stopped[/green]")


@app.callback()
def main() -> None:
    """Local sandbox commands."""


if __name__ == "__main__":
    app()
