"""The receiver-side snippet of docs/notifications.md ("Verifying the signature") works.

It is read from the page, run, and judged against bodies signed by `sinks.sign` (what the
webhook sink sends), so the page cannot drift from the signature the code produces.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from drills.service.notify import sinks

DOC = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"
SECRET = "s3cret-hmac-key"
BODY = b'{"deliveryId":"dlv-878aa867716f84d4e4155229eef88b4c","kind":"rollback-failed"}'

Verify = Callable[[str, bytes, str | None], bool]


def snippet(text: str) -> str:
    """The first python code block under the heading "Verifying the signature"."""
    heading = re.search(r"^#+ Verifying the signature\s*$", text, flags=re.MULTILINE)
    assert heading is not None, f"{DOC}: no heading 'Verifying the signature'"
    block = re.search(r"^```python\n(.*?)^```", text[heading.end() :], re.MULTILINE | re.DOTALL)
    assert block is not None, f"{DOC}: no python block under 'Verifying the signature'"
    return block.group(1)


@pytest.fixture
def verify() -> Verify:
    namespace: dict[str, object] = {}
    exec(compile(snippet(DOC.read_text(encoding="utf-8")), str(DOC), "exec"), namespace)
    found = namespace.get("verify")
    assert callable(found), f"{DOC}: the snippet defines no function verify"
    return found


def test_the_documented_check_accepts_a_body_signed_as_the_webhook_sink_signs_it(
    verify: Verify,
) -> None:
    assert verify(SECRET, BODY, sinks.sign(SECRET, BODY)) is True


def test_the_documented_check_rejects_a_tampered_body(verify: Verify) -> None:
    signature = sinks.sign(SECRET, BODY)
    tampered = BODY.replace(b"rollback-failed", b"finished")

    assert verify(SECRET, tampered, signature) is False


def test_the_documented_check_rejects_another_key_and_a_missing_or_bare_signature(
    verify: Verify,
) -> None:
    digest = sinks.sign(SECRET, BODY).removeprefix("sha256=")

    assert verify("another-key", BODY, sinks.sign(SECRET, BODY)) is False
    assert verify(SECRET, BODY, None) is False
    assert verify(SECRET, BODY, "") is False
    assert verify(SECRET, BODY, digest) is False  # the hex without its `sha256=` prefix
