"""Alarms: the `aws.cloudwatch-alarm` probe — steady state holds while alarms are quiet.

Invariants:
- Read-only: one `describe_alarms(AlarmNames=...)` per check (paged).
- States are filtered here, never by the API's `StateValue` (moto ignores it when
  `AlarmNames` is given, and filtering ourselves is correct against real AWS too).
- Without `expectState`, the probe holds while no named alarm is in ALARM
  (INSUFFICIENT_DATA counts as quiet); with it, every named alarm must be in that state.
- A named alarm that does not exist is a configuration error: `ProviderPermanent`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar, Literal

import pydantic
from pydantic import alias_generators

from orchestrator import errors, registry
from orchestrator.providers.aws import connecting, wrapping

NAME = "aws.cloudwatch-alarm"
State = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]


class AlarmParams(pydantic.BaseModel):
    """`alarmNames` (or one `alarmName`), and optionally the `expectState` every one is in."""

    model_config = pydantic.ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=alias_generators.to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )

    alarm_names: tuple[str, ...] = ()
    alarm_name: str | None = None
    expect_state: State | None = None

    @pydantic.model_validator(mode="after")
    def _some_alarm(self) -> AlarmParams:
        if not self.names():
            raise ValueError("name the alarms to watch in 'alarmNames' (or 'alarmName')")
        return self

    def names(self) -> tuple[str, ...]:
        single = (self.alarm_name,) if self.alarm_name else ()
        return tuple(dict.fromkeys((*self.alarm_names, *single)))


class CloudWatchAlarm(registry.Probe[AlarmParams]):
    """Steady state holds while the named CloudWatch alarms are not firing."""

    name: ClassVar[str] = NAME
    params_model: ClassVar[type[pydantic.BaseModel]] = AlarmParams
    description: ClassVar[str] = (
        "Holds while none of the named CloudWatch alarms is in ALARM (or, with expectState, "
        "while every one is in that state)."
    )

    def check(self, ctx: registry.ProviderContext, *, params: AlarmParams) -> registry.ProbeResult:
        conn = connecting.of(ctx.connection(connecting.PROVIDER))
        names = params.names()
        states: dict[str, str] = {}
        with wrapping.edge(f"{NAME} {', '.join(names)}"):
            pages = (
                conn.cloudwatch()
                .get_paginator("describe_alarms")
                .paginate(AlarmNames=list(names), AlarmTypes=["MetricAlarm", "CompositeAlarm"])
            )
            for page in pages:
                for alarm in (*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])):
                    states[alarm["AlarmName"]] = alarm.get("StateValue", "")
        missing = [n for n in names if n not in states]
        if missing:
            raise errors.ProviderPermanent(
                f"{NAME}: no alarm named {', '.join(missing)} in {conn.region}; check the "
                "probe's alarmNames"
            )
        if params.expect_state is None:
            bad = [n for n in names if states[n] == "ALARM"]
            expectation = "not in ALARM"
        else:
            bad = [n for n in names if states[n] != params.expect_state]
            expectation = f"in {params.expect_state}"
        summary = ", ".join(f"{n}={states[n]}" for n in names)
        message = (
            f"all alarms {expectation}: {summary}"
            if not bad
            else f"{', '.join(bad)} not {expectation}: {summary}"
        )
        return registry.ProbeResult(
            ok=not bad, value=dict(states), message=message, at=datetime.now(UTC)
        )
