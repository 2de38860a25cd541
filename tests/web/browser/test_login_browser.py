"""In the browser: a token pasted into `/login` logs the person in; a wrong one is refused.

The form is filled and sent as a person would (label "Token", button "Log in"); the
session cookie Chromium keeps is checked (HttpOnly, SameSite=Strict, not the token), and
the page after login names who is logged in. A wrong token leaves no cookie and the form
says why, with the field marked invalid.
"""

from __future__ import annotations

from urllib import parse

import pytest

from drills.web import deps
from tests.web.browser import conftest

pytestmark = pytest.mark.browser


def test_a_token_pasted_into_the_login_form_logs_the_operator_in_with_a_strict_cookie(
    browse: conftest.Browse, served: conftest.Served
) -> None:
    tab = browse()
    tab.visit("/login")
    user = served.users[conftest.OPERATOR]

    answer = conftest.log_in(tab.page, user.secret)

    assert answer is not None and answer.status == 200, answer and answer.status
    assert parse.urlsplit(tab.page.url).path == "/"
    tab.shot("after login")
    cookies = {c["name"]: c for c in tab.page.context.cookies()}
    session = cookies[deps.COOKIE]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert session["value"] != user.secret
    assert user.name in tab.page.locator("header").inner_text()
    assert tab.page.get_by_role("button", name="Log out").is_visible()
    tab.assert_clean()


def test_a_wrong_token_is_refused_by_the_form_which_says_why_and_sets_no_cookie(
    browse: conftest.Browse,
) -> None:
    tab = browse()
    tab.visit("/login")

    answer = conftest.log_in(tab.page, "sdt_not-a-real-token")

    assert answer is not None and answer.status == 401
    assert parse.urlsplit(tab.page.url).path == "/login"
    error = tab.page.locator("#login-error")
    assert error.is_visible() and error.inner_text().strip()
    assert tab.page.get_by_label("Token").get_attribute("aria-invalid") == "true"
    assert "sdt_not-a-real-token" not in tab.page.content()
    assert deps.COOKIE not in {c["name"] for c in tab.page.context.cookies()}
    tab.shot("refused login")
    tab.assert_clean(answered=[401])
