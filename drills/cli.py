"""The `stormdrill` command line: validate, plan and run drills, recover, and look around.

Each command group lives in `drills.commands.*`; this module only assembles them.
User mistakes end with a message naming the place and an exit code, never a traceback.
"""

from __future__ import annotations

import typer

from drills.commands import cmdb, demo, documents, reporting, running, sandbox

app = typer.Typer(
    name="stormdrill",
    help=(
        "Stormdrill runs chaos and continuity drills (zone failures, third-party outages,"
        " loss of a key person) against Kubernetes and AWS, inside guardrails, and undoes"
        " every fault. Start with `stormdrill scenarios list` and `stormdrill validate PATH`."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("validate")(documents.validate)
app.command("schema")(documents.schema_command)
app.add_typer(documents.app, name="scenarios")
app.add_typer(cmdb.app, name="cmdb")
app.add_typer(sandbox.app, name="sandbox")
app.command("plan")(running.plan)
app.command("run")(running.run)
app.command("abort")(running.abort)
app.command("recover")(running.recover)
app.command("ack")(running.ack)
app.command("actions")(running.actions)
app.command("demo")(demo.demo)
app.command("report")(reporting.report)
app.command("lint-report")(reporting.lint_report)
app.command("coverage")(reporting.coverage)
app.add_typer(running.app_killswitch, name="killswitch")
app.add_typer(running.app_runs, name="runs")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
