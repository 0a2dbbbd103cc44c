"""Go's certificate checks, in Go's order, with Go's messages (crypto/x509 Verify + VerifyHostname)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniapi.proxy.x509verify import X509Error, match_hostname, verify_server_certificate
from tests.unit.proxy.certs import CLIENT_AUTH, NOW, ca, make

CA = ca()
IP = "127.0.0.2"


def check(chain: list, host: str = IP, roots: tuple = (CA.cert,), now: dt.datetime = NOW) -> str:
    try:
        verify_server_certificate([c.cert for c in chain], roots, host, now)
    except X509Error as exc:
        return str(exc)
    return "ok"


def test_a_ca_signed_certificate_naming_the_ip_verifies() -> None:
    assert check([make("system:node:node1", issuer=CA, dns=["node1"], ips=[IP])]) == "ok"


def test_a_name_is_matched_against_dns_sans_and_an_ip_only_against_ip_sans() -> None:
    leaf = make("system:node:node1", issuer=CA, dns=["node1", "127.0.0.2"])
    assert check([leaf], host="NODE1") == "ok"
    assert check([leaf]) == "x509: cannot validate certificate for 127.0.0.2 because it doesn't contain any IP SANs"


@pytest.mark.parametrize(("sans", "host", "message"), [
    ({"ips": ["127.0.0.9"]}, IP, "x509: certificate is valid for 127.0.0.9, not 127.0.0.2"),
    ({"ips": ["127.0.0.9", "::1"]}, IP, "x509: certificate is valid for 127.0.0.9, ::1, not 127.0.0.2"),
    ({"dns": ["node1"]}, IP, "x509: cannot validate certificate for 127.0.0.2 because it doesn't contain any IP SANs"),
    ({"dns": ["node1", "node1.local"]}, "node2", "x509: certificate is valid for node1, node1.local, not node2"),
    ({"ips": [IP]}, "node1", "x509: certificate is not valid for any names, but wanted to match node1"),
    ({"san": False}, "node1", "x509: certificate relies on legacy Common Name field, use SANs instead"),
    ({"ips": ["::1"]}, "[::2]", "x509: certificate is valid for ::1, not ::2"),
], ids=["wrong-ip", "two-ips", "no-ip-sans", "wrong-name", "no-dns-sans", "legacy-cn", "ipv6-brackets"])
def test_hostname_errors(sans: dict, host: str, message: str) -> None:
    leaf = make("node1", issuer=CA, **sans)
    assert check([leaf], host=host) == message


def test_self_signed_is_an_unknown_authority() -> None:
    assert check([make("node1@1700000000", dns=["node1"], ips=[IP])]) == \
        "x509: certificate signed by unknown authority"


def test_the_hostname_is_checked_before_the_chain_as_in_go() -> None:
    # the kubelet's own self-signed pair names node1 only: Go reports the missing IP SAN, not the CA
    assert check([make("node1@1700000000", dns=["node1"])]).startswith("x509: cannot validate certificate")


def test_a_forged_ca_with_the_clusters_name_leaves_go_s_hint() -> None:
    forged = ca("kubernetes")
    leaf = make("system:node:node1", issuer=forged, ips=[IP])
    assert check([leaf]) == ('x509: certificate signed by unknown authority (possibly because of "x509: ECDSA '
                             'verification failure" while trying to verify candidate authority certificate '
                             '"kubernetes")')


def test_an_expired_leaf_names_both_times() -> None:
    leaf = make("n", issuer=CA, ips=[IP], not_before=NOW - dt.timedelta(days=10), not_after=NOW - dt.timedelta(days=1))
    assert check([leaf]) == ("x509: certificate has expired or is not yet valid: current time 2026-06-01T12:00:00Z "
                             "is after 2026-05-31T12:00:00Z")
    early = make("n", issuer=CA, ips=[IP], not_before=NOW + dt.timedelta(hours=1))
    assert check([early]).endswith("current time 2026-06-01T12:00:00Z is before 2026-06-01T13:00:00Z")


def test_an_expired_ca_is_the_hint_of_an_unknown_authority() -> None:
    old = ca("kubernetes", not_after=NOW - dt.timedelta(days=1))
    leaf = make("n", issuer=old, ips=[IP])
    assert check([leaf], roots=(old.cert,)) == (
        'x509: certificate signed by unknown authority (possibly because of "x509: certificate has expired or is '
        'not yet valid: current time 2026-06-01T12:00:00Z is after 2026-05-31T12:00:00Z" while trying to verify '
        'candidate authority certificate "kubernetes")')


def test_a_leaf_cannot_sign_another_leaf() -> None:
    fake_ca = make("kubernetes", issuer=CA, ips=[IP])  # a leaf named like the CA
    leaf = make("n", issuer=fake_ca, ips=[IP])
    assert "parent certificate cannot sign this kind of certificate" in check([leaf], roots=(fake_ca.cert,))


def test_an_intermediate_sent_by_the_server_completes_the_chain() -> None:
    inter = make("intermediate", issuer=CA, ca=True, eku=None)
    leaf = make("n", issuer=inter, ips=[IP])
    assert check([leaf, inter]) == "ok"
    assert check([leaf]) == "x509: certificate signed by unknown authority"


def test_a_client_only_certificate_is_an_incompatible_key_usage() -> None:
    leaf = make("n", issuer=CA, ips=[IP], eku=CLIENT_AUTH)
    assert check([leaf]) == "x509: certificate specifies an incompatible key usage"


def test_a_trusted_leaf_needs_no_chain() -> None:
    leaf = make("pinned", ips=[IP])
    assert check([leaf], roots=(leaf.cert,)) == "ok"


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)


@given(st.lists(_LABEL, min_size=1, max_size=4))
def test_a_name_matches_itself_and_its_wildcard_only_one_label_deep(labels: list[str]) -> None:
    host = ".".join(labels)
    assert match_hostname(host, host.upper())
    assert match_hostname(host, host + ".")
    if len(labels) > 1:
        assert match_hostname("*." + ".".join(labels[1:]), host)
        assert not match_hostname("*." + ".".join(labels[2:]), host) or len(labels) == 2
    assert not match_hostname("*", host) or len(labels) == 1
