"""config.validate refuses unsafe or contradictory flags with a message that says why; the insecure
defaults (real kube-apiserver ones) start, but with INSECURE warnings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from miniapi.config import Config, ConfigError, from_args, validate

ISSUER = "https://kubernetes.default.svc.cluster.local"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name in ("ca.crt", "tls.crt", "tls.key", "sa.key", "tokens.csv", "kubelet-ca.crt"):
        (tmp_path / name).write_text("x")
        out[name] = str(tmp_path / name)
    return out


@pytest.fixture
def good(files: dict[str, str]) -> Config:
    """A hardened configuration that validate() accepts without a single INSECURE warning."""
    return Config(tls_cert_file=files["tls.crt"], tls_private_key_file=files["tls.key"],
                  client_ca_file=files["ca.crt"], service_account_signing_key_file=files["sa.key"],
                  service_account_issuers=(ISSUER,), authorization_mode=("Node", "RBAC"),
                  anonymous_auth=False, kubelet_certificate_authority=files["kubelet-ca.crt"],
                  enable_admission_plugins=("NodeRestriction",))


def test_hardened_config_has_no_insecure_warnings(good: Config) -> None:
    cfg = validate(good)
    assert not [w for w in cfg.warnings if "INSECURE" in w]
    assert cfg.audiences == (ISSUER,)  # --api-audiences defaults to the issuers


def test_insecure_defaults_start_but_warn(good: Config) -> None:
    cfg = validate(dataclasses.replace(good, authorization_mode=("AlwaysAllow",), anonymous_auth=True,
                                       kubelet_certificate_authority=""))
    text = "\n".join(cfg.warnings)
    assert "INSECURE: --authorization-mode includes AlwaysAllow" in text
    assert "--anonymous-auth=true with AlwaysAllow" in text
    assert "--kubelet-certificate-authority unset" in text


@pytest.mark.parametrize("changes, why", [
    ({"service_account_issuers": ()}, "--service-account-issuer is a required flag"),
    ({"service_account_signing_key_file": ""}, "--service-account-signing-key-file"),
    ({"authorization_mode": ("Foo",)}, "--authorization-mode: unknown mode 'Foo'; choose from AlwaysAllow, "
                                       "AlwaysDeny, Node, RBAC"),
    ({"authorization_mode": ("RBAC", "Node", "RBAC")}, "mode specified more than once: RBAC,Node,RBAC"),
    ({"authorization_mode": ()}, "must name at least one mode (refusing to start without authorization)"),
    ({"tls_private_key_file": ""}, "--tls-cert-file and --tls-private-key-file must be given together"),
    ({"tls_cert_file": ""}, "--tls-cert-file and --tls-private-key-file must be given together"),
    ({"kubelet_client_certificate": "/x.crt"}, "--kubelet-client-certificate and --kubelet-client-key"),
    ({"service_cluster_ip_range": "10.96.0.0/33"}, "--service-cluster-ip-range:"),
    ({"service_cluster_ip_range": "not-a-cidr"}, "--service-cluster-ip-range:"),
    ({"service_cluster_ip_range": "10.96.0.1/12"}, "has host bits set"),
    ({"service_cluster_ip_range": "10.96.0.0/30"}, "too small"),
    ({"client_ca_file": "/nonexistent/ca.crt"}, "--client-ca-file: cannot read '/nonexistent/ca.crt'"),
    ({"token_auth_file": "/nonexistent/t.csv"}, "--token-auth-file: cannot read"),
    ({"service_account_signing_key_file": "/nonexistent/sa.key"}, "--service-account-signing-key-file: "
                                                                  "cannot read"),
    ({"service_account_key_files": ("/nonexistent/sa.pub",)}, "--service-account-key-file: cannot read"),
    ({"kubelet_certificate_authority": "/nonexistent/ca"}, "--kubelet-certificate-authority: cannot read"),
    ({"secure_port": 0}, "--secure-port must be between 1 and 65535"),
    ({"secure_port": 70000}, "--secure-port must be between 1 and 65535"),
    ({"kubelet_preferred_address_types": ("InternalIP", "Bogus")}, "unknown type 'Bogus'"),
    ({"enable_admission_plugins": ("NodeRestrictions",)}, 'enable-admission-plugins plugin "NodeRestrictions" is '
                                                          "unknown"),
    ({"enable_admission_plugins": ("NodeRestriction",), "disable_admission_plugins": ("NodeRestriction",)},
     "[NodeRestriction] in enable-admission-plugins and disable-admission-plugins overlapped"),
    ({"disable_admission_plugins": ("ServiceAccount",)}, "ServiceAccount is built into miniapi"),
    ({"service_account_max_token_expiration": 600}, "the service-account-max-token-expiration must be between 1 "
                                                    "hour and 2^32 seconds"),
], ids=["no-issuer", "no-signing-key", "unknown-mode", "duplicate-mode", "no-mode", "cert-without-key",
        "key-without-cert", "kubelet-cert-without-key", "cidr-prefix-too-long", "cidr-junk",
        "cidr-host-bits", "cidr-too-small", "missing-client-ca", "missing-token-file", "missing-signing-key",
        "missing-sa-key-file", "missing-kubelet-ca", "port-zero", "port-too-big", "unknown-address-type",
        "unknown-admission-plugin", "admission-plugin-enabled-and-disabled", "builtin-admission-plugin",
        "max-token-expiration-below-an-hour"])
def test_validate_refuses(good: Config, changes: dict[str, object], why: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate(dataclasses.replace(good, **changes))  # type: ignore[arg-type]
    assert why in str(err.value)
    assert "\n" not in str(err.value)


def test_from_args_uses_kube_apiserver_flag_names(files: dict[str, str]) -> None:
    cfg, verbosity = from_args([
        "--secure-port", "16443", "--client-ca-file", files["ca.crt"], "--authorization-mode", "Node,RBAC",
        "--anonymous-auth=false", "--service-account-signing-key-file", files["sa.key"],
        "--service-account-issuer", ISSUER, "--service-account-issuer", "https://old.example",
        "--api-audiences", "a,b", "--enable-bootstrap-token-auth", "--kubelet-preferred-address-types",
        "InternalIP,Hostname", "-v", "4"])
    assert (cfg.secure_port, cfg.anonymous_auth, cfg.enable_bootstrap_token_auth) == (16443, False, True)
    assert cfg.authorization_mode == ("Node", "RBAC")
    assert cfg.service_account_issuers == (ISSUER, "https://old.example")
    assert cfg.audiences == ("a", "b")
    assert cfg.kubelet_preferred_address_types == ("InternalIP", "Hostname")
    assert verbosity == 4


def test_from_args_defaults_are_the_real_insecure_ones(files: dict[str, str]) -> None:
    cfg, _ = from_args(["--service-account-signing-key-file", files["sa.key"],
                        "--service-account-issuer", ISSUER])
    assert cfg.authorization_mode == ("AlwaysAllow",) and cfg.anonymous_auth is True
    assert cfg.kubelet_certificate_authority == "" and cfg.secure_port == 6443
    assert cfg.service_cluster_ip_range == "10.96.0.0/12"
    assert any("INSECURE" in w for w in cfg.warnings)
    assert "NodeRestriction" not in cfg.admission_plugins  # kubeadm adds it; the real default list has not
    assert "ServiceAccount" in cfg.admission_plugins and cfg.service_account_extend_token_expiration is True


def test_node_authorizer_without_node_restriction_warns(good: Config) -> None:
    cfg = validate(dataclasses.replace(good, enable_admission_plugins=()))
    assert any("INSECURE: admission plugin NodeRestriction is not enabled" in w for w in cfg.warnings)


@pytest.mark.parametrize("flag", ["--anonymous-auth=maybe", "--secure-port=https"])
def test_from_args_rejects_malformed_values(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        from_args([flag])
    assert exit_.value.code == 2
    assert "invalid" in capsys.readouterr().err


def test_max_token_expiration_below_the_extension_warns(good: Config) -> None:
    cfg = validate(dataclasses.replace(good, service_account_max_token_expiration=3600,
                                       service_account_extend_token_expiration=True))
    assert cfg.warnings[-2:] == (
        "service-account-extend-token-expiration is true, in order to correctly trigger safe transition logic, "
        "service-account-max-token-expiration must be set longer than 3607 seconds (currently 1h0m0s)",
        "service-account-extend-token-expiration is true, enabling tokens valid up to 31536000 seconds, which is "
        "longer than service-account-max-token-expiration set to 1h0m0s seconds")
    quiet = validate(dataclasses.replace(good, service_account_max_token_expiration=3600,
                                         service_account_extend_token_expiration=False))
    assert not [w for w in quiet.warnings if "token-expiration" in w]
