"""Static token file and bootstrap tokens: formats the apiserver will parse."""

from __future__ import annotations

import pytest

from pki.errors import PkiError
from pki.tokens import (
    BOOTSTRAP_TOKEN_RE,
    StaticToken,
    default_static_tokens,
    make_bootstrap_token,
    parse_bootstrap_token,
    parse_token_csv,
    render_token_csv,
)


def test_bootstrap_token_format() -> None:
    tokens = {str(make_bootstrap_token()) for _ in range(20)}
    assert len(tokens) == 20
    assert all(BOOTSTRAP_TOKEN_RE.fullmatch(t) for t in tokens)
    token = parse_bootstrap_token("abcdef.0123456789abcdef\n")
    assert (token.token_id, token.secret, token.user) == (
        "abcdef",
        "0123456789abcdef",
        "system:bootstrap:abcdef",
    )


@pytest.mark.parametrize(
    "text", ["", "abcdef", "ABCDEF.0123456789abcdef", "abcde.0123456789abcdefg", "abcdef:0123456789abcdef"]
)
def test_bad_bootstrap_tokens(text: str) -> None:
    with pytest.raises(PkiError, match=r"\[a-z0-9\]\{6\}"):
        parse_bootstrap_token(text)


def test_token_csv_format_and_round_trip() -> None:
    entries = [
        StaticToken("t1", "admin", "uid-admin", ("system:masters",)),
        StaticToken("t2", "alice", "uid-alice", ("dev", "ops")),
        StaticToken("t3", "nobody", "uid-nobody"),
    ]
    text = render_token_csv(entries)
    assert (
        text == 't1,admin,uid-admin,"system:masters"\nt2,alice,uid-alice,"dev,ops"\nt3,nobody,uid-nobody,""\n'
    )
    assert parse_token_csv(text) == entries
    assert parse_token_csv("t4,bob,uid-bob\n\n") == [StaticToken("t4", "bob", "uid-bob")]


def test_default_tokens_one_admin_one_unprivileged() -> None:
    admin, alice = default_static_tokens()
    assert admin.groups == ("system:masters",) and "system:masters" not in alice.groups
    assert len(admin.token) == 32 and admin.token != alice.token


@pytest.mark.parametrize(
    "bad", [StaticToken("a,b", "u", "1"), StaticToken("t", 'u"', "1"), StaticToken("t", "", "1")]
)
def test_token_csv_refuses_values_it_cannot_write(bad: StaticToken) -> None:
    with pytest.raises(PkiError):
        render_token_csv([bad])


def test_token_csv_needs_three_columns() -> None:
    with pytest.raises(PkiError, match="line 2"):
        parse_token_csv("t,u,1\nonly,two\n")
