"""Kubelet flags and the KubeletConfiguration file: precedence and the two sets of defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minikubelet.config import ConfigError, KubeletConfig, from_args, go_duration, parse_duration

BASE = ["--kubeconfig", "/etc/kubernetes/kubelet.conf"]


def write(tmp_path: Path, doc: dict[str, object], name: str = "config.yaml") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def test_flag_defaults_are_the_real_insecure_ones() -> None:
    cfg, verbosity = from_args(BASE)
    assert (cfg.anonymous_auth, cfg.authentication_token_webhook, cfg.authorization_mode, cfg.read_only_port) == \
        (True, False, "AlwaysAllow", 10255)
    assert (cfg.address, cfg.port, cfg.root_dir, cfg.node_status_update_frequency) == \
        ("0.0.0.0", 10250, "/var/lib/kubelet", 10.0)
    assert cfg.certificate_dir == "/var/lib/kubelet/pki" and verbosity == 1
    assert any("INSECURE" in w and "anonymous" in w for w in cfg.warnings)
    assert any("read-only port 10255" in w for w in cfg.warnings)


def test_config_file_defaults_are_the_secure_ones(tmp_path: Path) -> None:
    path = write(tmp_path, {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration"})
    cfg, _ = from_args([*BASE, "--config", path])
    assert (cfg.anonymous_auth, cfg.authentication_token_webhook, cfg.authorization_mode, cfg.read_only_port) == \
        (False, True, "Webhook", 0)
    assert not any("INSECURE" in w for w in cfg.warnings)


def test_flags_override_the_file_which_overrides_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, {"kind": "KubeletConfiguration", "apiVersion": "kubelet.config.k8s.io/v1beta1",
                            "port": 11250, "readOnlyPort": 11255, "serverTLSBootstrap": True,
                            "authentication": {"anonymous": {"enabled": True}, "webhook": {"cacheTTL": "1m30s"},
                                               "x509": {"clientCAFile": "/ca.crt"}},
                            "authorization": {"webhook": {"cacheUnauthorizedTTL": "5s"}},
                            "nodeStatusUpdateFrequency": "2s", "crashLoopBackOff":
                                {"maxContainerRestartPeriod": "1m"}})
    cfg, _ = from_args([*BASE, "--config", path, "--port", "12250", "--anonymous-auth=false"])
    assert cfg.port == 12250 and cfg.read_only_port == 11255 and cfg.server_tls_bootstrap
    assert cfg.anonymous_auth is False and cfg.client_ca_file == "/ca.crt"
    assert cfg.authentication_token_webhook_cache_ttl == 90 and cfg.authorization_webhook_cache_unauthorized_ttl == 5
    assert cfg.node_status_update_frequency == 2 and cfg.crash_loop_back_off_max == 60
    assert cfg.authorization_mode == "Webhook"  # file default, not the flag default


def test_unknown_file_fields_warn(tmp_path: Path) -> None:
    path = write(tmp_path, {"kind": "KubeletConfiguration", "clusterDNS": ["10.96.0.10"]})
    cfg, _ = from_args([*BASE, "--config", path])
    assert any("clusterDNS" in w and "not implemented" in w for w in cfg.warnings)


def test_configz_round_trips_through_the_file_form(tmp_path: Path) -> None:
    cfg, _ = from_args([*BASE, "--read-only-port", "0", "--authorization-mode", "Webhook"])
    doc = cfg.kubelet_configuration()
    assert doc["authentication"]["webhook"]["cacheTTL"] == "2m0s" and doc["readOnlyPort"] == 0
    again, _ = from_args([*BASE, "--config", write(tmp_path, doc)])
    assert again.kubelet_configuration() == doc


@pytest.mark.parametrize("args, message", [
    ([], "--kubeconfig is required"),
    ([*BASE, "--authorization-mode", "RBAC"], "must be one of AlwaysAllow, Webhook"),
    ([*BASE, "--port", "0"], "--port 0"),
    ([*BASE, "--tls-cert-file", "/x.crt"], "must be given together"),
    ([*BASE, "--node-ip", "node1"], "is not an IP address"),
    ([*BASE, "--node-labels", "node-role.kubernetes.io/worker="], "unknown 'kubernetes.io' or 'k8s.io' labels"),
    ([*BASE, "--node-status-update-frequency", "ten"], "invalid duration"),
], ids=["no-kubeconfig", "authz-mode", "port-0", "half-tls", "node-ip", "node-role", "duration"])
def test_refuses_nonsense(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises((ConfigError, SystemExit)) as exc:
        from_args(args)
    text = str(exc.value) if isinstance(exc.value, ConfigError) else capsys.readouterr().err
    assert message in text


def test_allowed_node_labels() -> None:
    cfg, _ = from_args([*BASE, "--node-labels", "tier=edge,node.kubernetes.io/pool=a,kubernetes.io/os=linux"])
    assert cfg.labels == {"tier": "edge", "node.kubernetes.io/pool": "a", "kubernetes.io/os": "linux"}


def test_node_name_is_the_lowercased_override() -> None:
    cfg = KubeletConfig(kubeconfig="k", hostname_override="Node1 ")
    assert cfg.node_name == "node1"


@pytest.mark.parametrize("text, seconds", [("10s", 10), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("0", 0)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@given(st.integers(min_value=1, max_value=10 * 86400))
def test_go_duration_round_trips(seconds: int) -> None:
    assert parse_duration(go_duration(seconds)) == seconds
