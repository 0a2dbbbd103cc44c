"""Fixture flags -> Config: the CLI's parser and validation, the kit's defaults, port 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from miniapi.config import from_args
from miniapi.testing import ClusterPKI, FlagError
from miniapi.testing.flags import build_config, kit_defaults, to_argv


@pytest.mark.parametrize(("flags", "argv"), [
    ({"anonymous_auth": False}, ["--anonymous-auth=false"]),
    ({"authorization_mode": ["Node", "RBAC"]}, ["--authorization-mode=Node,RBAC"]),
    ({"service_account_issuer": ["a", "b"]}, ["--service-account-issuer=a", "--service-account-issuer=b"]),
    ({"client_ca_file": ""}, ["--client-ca-file="]),
    ({"token_auth_file": None}, []),
    ({"--secure-port": 8443}, ["--secure-port=8443"]),
], ids=["bool", "csv-list", "repeatable-list", "empty-switches-off", "none-drops", "flag-spelling"])
def test_to_argv(flags: dict[str, object], argv: list[str]) -> None:
    assert to_argv(flags) == argv


def test_defaults_are_what_the_cli_would_build(cluster_pki: ClusterPKI, tmp_path: Path) -> None:
    token_file = tmp_path / "tokens.csv"
    token_file.write_text("")
    cfg, merged = build_config(cluster_pki, token_file)
    cli, _ = from_args(to_argv(kit_defaults(cluster_pki, token_file)))
    assert cfg.secure_port == 0 and cli.secure_port == 6443  # rule 4: only the port differs
    assert cfg == cli.__class__(**{**cli.__dict__, "secure_port": 0})
    assert merged["--authorization-mode"] == "Node,RBAC"


def test_explicit_port_is_kept(cluster_pki: ClusterPKI, tmp_path: Path) -> None:
    (tmp_path / "tokens.csv").write_text("")
    cfg, _ = build_config(cluster_pki, tmp_path / "tokens.csv", {"secure_port": 16443})
    assert cfg.secure_port == 16443


@pytest.mark.parametrize(("flags", "argv", "message"), [
    ({"secure_port": 0}, (), "--secure-port must be between 1 and 65535"),
    ({"authorization_mode": ""}, (), "must name at least one mode"),
    ({"service_account_issuer": None}, (), "--service-account-issuer is a required flag"),
    ({}, ("--anonymous-auth=maybe",), "the apiserver CLI refuses"),
    ({"no_such_flag": 1}, (), "unknown apiserver flag(s) --no-such-flag"),
], ids=["port-0-by-hand", "no-authz", "no-issuer", "bad-bool", "unknown"])
def test_refused_like_the_cli(cluster_pki: ClusterPKI, tmp_path: Path, flags: dict[str, object],
                              argv: tuple[str, ...], message: str) -> None:
    (tmp_path / "tokens.csv").write_text("")
    with pytest.raises(FlagError) as err:
        build_config(cluster_pki, tmp_path / "tokens.csv", flags, argv)
    assert message in str(err.value)
