"""Secret rules, the store's redaction before writing, and private files, without a sandbox."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import stat
from pathlib import Path

import pytest

from orchestrator import engine, journal, mutations, records, states
from reports import evidence, postmortem, redaction, rendering, writing
from scenarios import secrets
from tests.reports import factories

TOKEN = "S3cr3t-canary-UNIT"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("apiToken", True),
        ("vendorApiKey", True),
        ("db_password", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("clientSecret", True),
        ("signingKey", True),
        ("credentials", True),
        ("Authorization", True),
        ("zone", False),
        ("keyPerson", False),
        ("maxKeys", False),
        ("target_key", False),
        ("Key", False),
        ("webHealthUrl", False),
    ],
)
def test_names_that_look_secret_are_told_apart_from_ordinary_ones(name: str, secret: bool) -> None:
    assert secrets.looks_secret(name) is secret


def test_a_known_secret_is_masked_where_it_was_substituted_and_url_encoded() -> None:
    redactor = secrets.Redactor().with_secrets(["p@ss word/42"])

    text = redactor.text("Bearer-less header p@ss word/42; url https://h/?k=p%40ss%20word%2F42")

    assert "p@ss" not in text and "p%40ss" not in text
    assert text == "Bearer-less header ***; url https://h/?k=***"


def test_the_value_under_a_secret_key_is_masked_in_json_but_not_its_neighbours() -> None:
    redactor = secrets.Redactor(keys=frozenset({"vendorHeader"}))

    masked = redactor.json(
        {
            "parameters": {"apiToken": "abc", "vendorHeader": "x1", "zone": "us-east-1a"},
            "taint": {"key": "node.kubernetes.io/unschedulable"},
            "url": "http://user:pw@host/x",
        }
    )

    assert masked == {
        "parameters": {"apiToken": "***", "vendorHeader": "***", "zone": "us-east-1a"},
        "taint": {"key": "node.kubernetes.io/unschedulable"},
        "url": "http://***@host/x",
    }


def test_short_secret_values_are_masked_under_their_key_but_not_searched_for_in_text() -> None:
    redactor = secrets.Redactor().with_secrets(["42"], keys=["pin"])

    assert redactor.json({"pin": "42", "note": "replicas 42"}) == {
        "pin": "***",
        "note": "replicas 42",
    }


def test_the_store_never_writes_a_secret_but_keeps_undo_data_intact(tmp_path: Path) -> None:
    store = journal.open_store(f"sqlite:///{tmp_path / 'j.db'}")
    store.mask_secrets([TOKEN])
    run = states.new_run(
        id=states.RunId("r1"),
        scenario="s",
        environment="e",
        environment_source="e.yaml",
        owner=states.Owner.current(),
        at=dt.datetime.now(dt.UTC),
        record=records.RunRecord(
            parameters={"apiToken": "other-token-value", "note": f"uses {TOKEN}"}
        ),
    )
    store.create_run(run)
    event = store.append_event(
        run.id,
        kind="probe",
        message=f"GET http://drill:pw1234@127.0.0.1/healthz with Bearer {TOKEN}",
        data={"password": "hunter22", "message": f"x {TOKEN}"},
    )
    undo = mutations.UndoToken(action="a", data={"token": TOKEN, "password": "keep-me"})
    planned = mutations.PlannedMutation(
        step="st",
        target=mutations.TargetRef(provider="kubernetes", kind="node", name="n1"),
        action="a",
        params={"apiKey": "zzzz-9999"},
        pre_state={"header": f"Bearer {TOKEN}"},
        undo=undo,
    )
    entry = store.record_intent(run.id, planned)
    store.mark_applied(entry.seq)
    store.mark_revert_failed(entry.seq, error=f"403 for password={TOKEN}")
    store.save_run(
        dataclasses.replace(
            store.get_run(run.id), reason=f"failed: {TOKEN}", abort_reason=f"x {TOKEN}"
        ),
        expected_state=states.RunState.PENDING,
    )

    stored = store.get_run(run.id)
    assert stored.record.parameters == {"apiToken": "***", "note": "uses ***"}
    assert stored.reason == "failed: ***" and stored.abort_reason == "x ***"
    assert event.message == "GET http://***@127.0.0.1/healthz with Bearer ***"
    assert store.events(run.id)[0].data == {"password": "***", "message": "x ***"}
    kept = store.entries(run.id)[0]
    assert kept.params == {"apiKey": "***"} and kept.pre_state == {"header": "Bearer ***"}
    assert kept.error == "403 for password=***"
    assert store.undo_plan(run.id)[0].undo == undo  # what rollback and recovery need
    store.close()
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("j.db*"))
    assert TOKEN.encode() in raw  # inside the undo token only: every other field is above


def test_a_postmortem_masks_parameters_named_like_secrets_and_known_secret_values(
    tmp_path: Path,
) -> None:
    store = factories.open_store(tmp_path)
    run = factories.record_run(store)
    raw = dataclasses.replace(
        run.record, parameters={"zone": "zone-a", "vendorApiKey": TOKEN, "plain": "kept-value"}
    )
    bare = dataclasses.replace(run, record=raw)
    found = evidence.load(store, run.id)
    report = postmortem.build_postmortem(
        dataclasses.replace(found, run=bare),
        None,
        redactor=redaction.Redactor().with_secrets([], keys=["plain"]),
    )

    for fmt in rendering.Format:
        text = rendering.render(report, fmt)
        assert TOKEN not in text and "kept-value" not in text, fmt
    assert report.metadata.parameters == {"plain": "***", "vendorApiKey": "***", "zone": "zone-a"}


def test_the_store_file_and_its_wal_are_created_private_under_umask_022(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        with journal.open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
            store.set_killswitch(engaged=False, by="t", reason="r")
            modes = {
                path.name: _mode(path) for path in tmp_path.iterdir() if path.name[:5] == "store"
            }
    finally:
        os.umask(previous)

    assert {"store.db", "store.db-wal", "store.db-shm"} <= set(modes)
    assert set(modes.values()) == {0o600}, modes


def test_an_existing_store_readable_by_others_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "old.db"
    journal.open_store(f"sqlite:///{path}").close()
    path.chmod(0o644)

    with caplog.at_level(logging.WARNING, logger="orchestrator.journal"):
        journal.open_store(f"sqlite:///{path}").close()

    assert any(
        "readable or writable by others (mode 0644)" in r.getMessage() and "chmod 600" in r.message
        for r in caplog.records
    )
    assert _mode(path) == 0o644  # warned, not changed behind the user's back


def test_reports_are_written_private_under_umask_022(tmp_path: Path) -> None:
    store = factories.open_store(tmp_path)
    run = factories.record_run(store)
    reports_dir = tmp_path / "data" / "reports"
    previous = os.umask(0o022)
    try:
        written = writing.write_for_run(store.get_run(run.id), store, None, reports_dir)
    finally:
        os.umask(previous)

    assert _mode(tmp_path / "data") == _mode(reports_dir) == _mode(written.folder) == 0o700
    files = [written.markdown, written.html, written.json]
    assert [_mode(path) for path in files] == [0o600] * 3
    assert written.junit is None or _mode(written.junit) == 0o600


def test_an_unusable_store_url_names_it_without_its_password() -> None:
    with pytest.raises(Exception, match=r"\*\*\*@") as raised:
        journal.open_store("postgresql+nosuchdriver://postgres:S3cr3t-canary-URL@127.0.0.1/db")

    assert "S3cr3t-canary-URL" not in str(raised.value)


def test_another_process_masks_a_bare_secret_in_ack_evidence_by_its_fingerprint(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'j.db'}"
    secret = "Zq8-vendor-key-4471"
    with journal.open_store(url) as driving:  # the process that bound the drill
        driving.mask_secrets([secret])
        driving.create_run(
            states.new_run(
                id=states.RunId("r1"),
                scenario="s",
                environment="e",
                environment_source="e.yaml",
                owner=states.Owner.current(),
                at=dt.datetime.now(dt.UTC),
                record=records.RunRecord(
                    parameters={"vendor": secret},
                    redaction=engine.fingerprints_of(frozenset({secret})),
                ),
            )
        )
    with journal.open_store(url) as acking:  # `stormdrill ack` in another shell
        assert acking.redactor.values == frozenset()
        acking.append_event(
            states.RunId("r1"),
            kind="ack",
            message=f"ack by alice: rotated {secret}.",
            data={"evidence": f"pasted {secret} (no key= in front)"},
        )
        stored = acking.events(states.RunId("r1"))[-1]
        record = acking.get_run(states.RunId("r1")).record
    assert stored.message == "ack by alice: rotated ***."
    assert stored.data == {"evidence": "pasted *** (no key= in front)"}
    assert record.parameters == {"vendor": "***"}
    assert secret not in str(record.to_json())  # the record holds salted digests only
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("j.db*"))
    assert secret.encode() not in raw


def test_fingerprints_mask_whole_words_only_and_survive_a_json_round_trip() -> None:
    prints = secrets.Fingerprints.of(["abcd-1234"], salt="s")
    again = secrets.Fingerprints.from_json(prints.to_json())

    assert again == prints
    assert prints.mask("key abcd-1234, then abcd-1234!") == "key ***, then ***!"
    assert prints.mask("xabcd-1234 abcd-12345") == "xabcd-1234 abcd-12345"
    assert secrets.Fingerprints.from_json({"salt": 3}) is None


def test_a_stormdrill_api_token_is_masked_in_text_but_its_short_id_is_kept() -> None:
    from drills.service import tokens

    token = tokens.PREFIX + "Q" * 10 + "_-" + "z" * 31
    shown = token[: tokens.PREFIX_LENGTH]
    text = f"curl -H 'X: {token}' (listed as {shown})"

    masked = secrets.redact(text)

    assert token not in masked
    assert f"(listed as {shown})" in masked


_PREFILTER_CASES = [
    "reverting #12: kubernetes.cordon on kubernetes node bench-node-0001",
    "postgres://app:hunter2hunter2@db.internal:5432/app",
    "Authorization: BEARER abcdefgh12345678",
    "basic ZGVtbzpkZW1vZGVtbw==",
    "PASSWORD=hunter2 and Api_Key: 'abc' and x-auth-token=\"q\" credentials=c",
    "pa\u017f\u017fword=hunter2",  # long s: matches "s" under IGNORECASE; prefilters agree
    "\u212aey=1 KEY=2 apiKEY=3 sessionkey=4",
    "AKIAABCDEFGHIJKLMNOP ASIAABCDEFGHIJKLMNOP ghp_" + "a" * 30,
    "xoxb-1234567890-abc eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlMTIz",
    "sk_live_abcdefghijkl sdt_" + "b" * 30,
    "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
    "",
]


@pytest.mark.parametrize("text", _PREFILTER_CASES)
def test_the_prefilters_never_skip_a_rule_that_would_have_masked_something(text: str) -> None:
    unfiltered = text
    for _may_match, pattern, replacement in secrets._STEPS:
        unfiltered = pattern.sub(replacement, unfiltered)
    assert secrets.redact(text) == unfiltered


def test_every_credential_pattern_has_a_step() -> None:
    patterns = [pattern for _, pattern, _ in secrets._STEPS]
    assert set(secrets._PATTERNS) <= set(patterns)
    assert len(patterns) == len(set(patterns))
