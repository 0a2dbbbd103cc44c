"""TokenFileAuthenticator: the CSV format, bad lines, and "not mine" for unknown tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniapi.authn.base import Credentials
from miniapi.authn.tokenfile import TokenFileAuthenticator, parse_token_file
from miniapi.user import UserInfo

GOOD = """\
# token,user,uid,groups
31ada4fd-adec-460c-809a-9e56ceb75269,alice,u-1,"devs,system:masters"

bob-token,bob,u-2
carol-token,carol,u-3,solo,ignored-extra-column
"""


@pytest.fixture
def authenticator(tmp_path: Path) -> TokenFileAuthenticator:
    path = tmp_path / "tokens.csv"
    path.write_text(GOOD)
    return TokenFileAuthenticator.from_file(path)


@pytest.mark.parametrize("token,user", [
    ("31ada4fd-adec-460c-809a-9e56ceb75269", UserInfo("alice", "u-1", ("devs", "system:masters"))),
    ("bob-token", UserInfo("bob", "u-2")),
    ("carol-token", UserInfo("carol", "u-3", ("solo",))),
], ids=["quoted-groups", "three-columns", "extra-column"])
async def test_known_tokens(authenticator: TokenFileAuthenticator, token: str, user: UserInfo) -> None:
    response = await authenticator.authenticate(Credentials(authorization=f"Bearer {token}"))
    assert response is not None and response.user == user and response.authenticator == "token-file"


@pytest.mark.parametrize("authorization", [
    None, "", "Basic Ym9iOnB3", "Bearer ", "Bearer unknown",
    "Bearer eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln", "Bearer abcdef.0123456789abcdef",
    "Bearer BOB-TOKEN",
], ids=["no-header", "empty", "basic", "empty-bearer", "unknown", "jwt", "bootstrap", "case-differs"])
async def test_unknown_or_absent_tokens_are_not_mine(authenticator: TokenFileAuthenticator,
                                                     authorization: str | None) -> None:
    assert await authenticator.authenticate(Credentials(authorization=authorization)) is None


def test_comments_and_blank_lines_are_skipped(authenticator: TokenFileAuthenticator) -> None:
    assert len(authenticator) == 3


@pytest.mark.parametrize("text,message", [
    ("only,two\n", "line 1: must have at least 3 columns (token, user name, user uid), found 2"),
    ("a,b,c\n\nlonely\n", "line 3: must have at least 3 columns"),
    ('tok,user,uid,"unterminated\n', "line 1:"),
    ('tok,us"er,uid\n', "line 1:"),
], ids=["two-columns", "one-column-after-blank", "open-quote", "quote-inside-field"])
def test_bad_lines_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as caught:
        TokenFileAuthenticator.from_file(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_empty_token_skipped_and_duplicate_replaces(caplog: pytest.LogCaptureFixture) -> None:
    tokens = parse_token_file([",ghost,u-0", "t,first,u-1", "t,second,u-2"])
    assert tokens == {"t": UserInfo("second", "u-2")}
    assert "empty token" in caplog.text and "duplicate token" in caplog.text
    assert "t,first" not in caplog.text  # the log never carries a token


@given(st.lists(st.text(alphabet=st.sampled_from('ab,"# \t\x00é'), max_size=12), max_size=6))
def test_parser_only_returns_or_raises_value_error(lines: list[str]) -> None:
    try:
        tokens = parse_token_file(lines)
    except ValueError as e:
        assert "line " in str(e)
        return
    assert all(isinstance(user, UserInfo) for user in tokens.values())
