from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniapi.controllermanager.config import (
    CONTROLLERS,
    Config,
    ConfigError,
    format_duration,
    from_args,
    parse_duration,
    validate,
)


@pytest.mark.parametrize(("text", "seconds"), [
    ("8760h0m0s", 8760 * 3600), ("40s", 40), ("5s", 5), ("200ms", 0.2), ("1h30m", 5400), ("1.5h", 5400),
    ("0", 0), ("90s", 90), ("1m0.5s", 60.5), ("100us", 1e-4),
], ids=lambda v: str(v))
def test_parse_go_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "1d", "5 s", "1h-5m", "abc"])
def test_parse_go_duration_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [
    (8760 * 3600, "8760h0m0s"), (40, "40s"), (60, "1m0s"), (5400, "1h30m0s"), (0.2, "200ms"), (0, "0s")])
def test_format_go_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=1, max_value=10 ** 7))
def test_format_then_parse_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(("flag", "enabled"), [
    (("*",), tuple(CONTROLLERS)),
    (("*", "-scheduler"), tuple(n for n in CONTROLLERS if n != "scheduler")),
    (("csrapproving", "csrsigning"), ("csrapproving", "csrsigning")),
    (("*", "-node-lifecycle-controller"), tuple(n for n in CONTROLLERS if n != "nodelifecycle")),
    (("certificatesigningrequest-signing-controller",), ("csrsigning",)),
], ids=["all", "all-but-scheduler", "two", "long-name-disable", "long-name-enable"])
def test_controllers_flag(flag: tuple[str, ...], enabled: tuple[str, ...]) -> None:
    assert Config(controllers=flag).enabled == enabled


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "kcm.conf"
    path.write_text("{}")
    return str(path)


def test_defaults_match_kube_controller_manager(kubeconfig: str) -> None:
    cfg, _ = from_args(["--kubeconfig", kubeconfig])
    assert cfg.cluster_signing_duration == 8760 * 3600
    assert (cfg.node_monitor_period, cfg.node_monitor_grace_period) == (5, 40)
    assert cfg.controllers == ("*",) and cfg.leader_elect is True
    assert (cfg.allocate_node_cidrs, cfg.node_cidr_mask_size) == (False, 24)


def test_flags_parse(kubeconfig: str) -> None:
    cfg, v = from_args(["--kubeconfig", kubeconfig, "--cluster-signing-duration", "1h", "--controllers",
                        "*,-scheduler", "--node-monitor-period", "200ms", "--allocate-node-cidrs",
                        "--cluster-cidr", "10.244.0.0/16", "--leader-elect=false", "-v", "4"])
    assert cfg.cluster_signing_duration == 3600 and cfg.node_monitor_period == pytest.approx(0.2)
    assert cfg.controllers == ("*", "-scheduler") and cfg.allocate_node_cidrs and not cfg.leader_elect
    assert v == 4


@pytest.mark.parametrize(("changes", "message"), [
    ({"kubeconfig": ""}, "--kubeconfig is required"),
    ({"kubeconfig": "/nonexistent/kcm.conf"}, "no such file"),
    ({"cluster_signing_cert_file": "KUBECONFIG"}, "must be given together"),
    ({"controllers": ("*", "-bogus")}, "not in the list of known controllers"),
    ({"node_monitor_period": 0.0}, "--node-monitor-period must be a positive duration"),
    ({"allocate_node_cidrs": True}, "requires --cluster-cidr"),
    ({"allocate_node_cidrs": True, "cluster_cidr": "10.244.0.0/16", "node_cidr_mask_size": 8}, "between"),
    ({"allocate_node_cidrs": True, "cluster_cidr": "10.0.0.0/8", "node_cidr_mask_size": 28}, "at most 16 bits"),
    ({"allocate_node_cidrs": True, "cluster_cidr": "10.244.0.0/33"}, "--cluster-cidr"),
    ({"leader_elect_renew_deadline": 20.0}, "lease-duration > --leader-elect-renew-deadline"),
], ids=["no-kubeconfig", "missing-file", "half-signing-pair", "unknown-controller", "zero-period",
        "cidrs-without-cidr", "mask-too-short", "mask-too-deep", "bad-cidr", "lease-shorter-than-deadline"])
def test_validate_refuses(kubeconfig: str, changes: dict[str, object], message: str) -> None:
    values = {k: (kubeconfig if v == "KUBECONFIG" else v) for k, v in changes.items()}
    cfg = Config(**{"kubeconfig": kubeconfig, **values})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


def test_help_names_the_real_flags_and_the_scheduler_caveat(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        from_args(["--help"])
    out = capsys.readouterr().out
    for flag in ("--cluster-signing-cert-file", "--cluster-signing-duration", "--root-ca-file",
                 "--node-monitor-grace-period", "--allocate-node-cidrs", "--node-cidr-mask-size", "--leader-elect"):
        assert flag in out
    assert "separate kube-scheduler binary" in " ".join(out.split())
