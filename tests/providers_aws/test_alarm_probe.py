"""aws.cloudwatch-alarm: states driven with set_alarm_state, filtered by the probe."""

from __future__ import annotations

import pytest

from orchestrator import context, errors
from orchestrator.providers.aws import alarms, connecting
from tests.providers_aws import helpers

NAMES = ["checkout-5xx-high", "payments-latency-high"]


def probe() -> alarms.CloudWatchAlarm:
    return alarms.CloudWatchAlarm()


def test_steady_state_holds_while_no_named_alarm_is_in_alarm(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    p = probe()
    params = p.parse_params({"alarmNames": NAMES})

    assert p.check(ctx, params=params).ok
    conn.cloudwatch().set_alarm_state(
        AlarmName="payments-latency-high", StateValue="ALARM", StateReason="test"
    )
    result = p.check(ctx, params=params)

    assert not result.ok
    assert result.value == {"checkout-5xx-high": "OK", "payments-latency-high": "ALARM"}
    assert "payments-latency-high" in result.message


def test_the_bundled_scenarios_alarm_name_and_expect_state_form_works(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    p = probe()
    params = p.parse_params({"alarmName": "checkout-5xx-high", "expectState": "OK"})
    assert p.check(ctx, params=params).ok

    conn.cloudwatch().set_alarm_state(
        AlarmName="checkout-5xx-high", StateValue="INSUFFICIENT_DATA", StateReason="test"
    )

    assert not p.check(ctx, params=params).ok


def test_an_unknown_alarm_is_a_permanent_error_naming_it(ctx: context.RunContext) -> None:
    p = probe()

    with pytest.raises(errors.ProviderPermanent, match="no-such-alarm"):
        p.check(ctx, params=p.parse_params({"alarmNames": ["no-such-alarm", *NAMES]}))


def test_params_need_at_least_one_alarm() -> None:
    with pytest.raises(errors.InvalidParams, match="alarmNames"):
        probe().parse_params({})


def test_probe_is_registered_by_the_plugin() -> None:
    assert helpers.registry_with_aws().get_probe(alarms.NAME) is alarms.CloudWatchAlarm
