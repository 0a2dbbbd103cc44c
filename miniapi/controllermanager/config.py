"""Controller-manager configuration: a frozen dataclass built from flags named like
kube-controller-manager's, with the real defaults.

Rules :func:`validate` applies before anything starts:

1. ``--kubeconfig`` is required (there is no in-cluster config to fall back on) and must exist.
2. ``--cluster-signing-cert-file`` and ``--cluster-signing-key-file`` come together; unset, the
   csrsigning controller is skipped with a log line, as the real one is.
3. ``--controllers`` names only known controllers: ``*`` (all), ``NAME`` (enable), ``-NAME``
   (disable); the real long names (``certificatesigningrequest-approving-controller``...) are aliases.
4. ``--allocate-node-cidrs`` needs a valid ``--cluster-cidr``, and ``--node-cidr-mask-size`` must fit in
   it at most 16 bits deeper (the real CIDR set's limit).
5. Durations use Go syntax (``8760h0m0s``, ``40s``, ``200ms``) and must be positive; the leader
   election lease must outlast its renew deadline, which must outlast the retry period.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from miniapi.flags import parse_bool, parse_csv
from pki.signer import DEFAULT_SIGNING_DURATION_SECONDS


class ConfigError(ValueError):
    """A configuration the controller-manager refuses to start with."""


# Our short names (the --controllers names of kube-controller-manager <= 1.27) -> real 1.28+ names.
CONTROLLERS: dict[str, str] = {
    "csrapproving": "certificatesigningrequest-approving-controller",
    "csrsigning": "certificatesigningrequest-signing-controller",
    "serviceaccount": "serviceaccount-controller",
    "root-ca-cert-publisher": "root-ca-certificate-publisher-controller",
    "nodelifecycle": "node-lifecycle-controller",
    "nodeipam": "node-ipam-controller",
    "endpoint": "endpoints-controller",
    "scheduler": "kube-scheduler",
}
_ALIASES = {long: short for short, long in CONTROLLERS.items()}


@dataclass(frozen=True)
class Config:
    kubeconfig: str = ""
    cluster_signing_cert_file: str = ""
    cluster_signing_key_file: str = ""
    cluster_signing_duration: float = float(DEFAULT_SIGNING_DURATION_SECONDS)
    root_ca_file: str = ""
    controllers: tuple[str, ...] = ("*",)
    node_monitor_period: float = 5.0
    node_monitor_grace_period: float = 40.0
    allocate_node_cidrs: bool = False
    cluster_cidr: str = ""
    node_cidr_mask_size: int = 24
    leader_elect: bool = True
    leader_elect_lease_duration: float = 15.0
    leader_elect_renew_deadline: float = 10.0
    leader_elect_retry_period: float = 2.0

    @property
    def enabled(self) -> tuple[str, ...]:
        """The controllers ``--controllers`` turns on, in start order (rule 3)."""
        on: set[str] = set()
        for item in self.controllers:
            if item == "*":
                on |= set(CONTROLLERS)
            elif item.startswith("-"):
                on.discard(_canonical(item[1:]))
            else:
                on.add(_canonical(item))
        return tuple(name for name in CONTROLLERS if name in on)


def _canonical(name: str) -> str:
    return _ALIASES.get(name, name)


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds: ``8760h0m0s`` -> 31536000.0, ``200ms`` -> 0.2."""
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    sign = -1.0 if s.startswith("-") else 1.0
    body = s.lstrip("+-")
    pos, total = 0, 0.0
    while pos < len(body):
        match = _GO_PART.match(body, pos)
        if match is None:
            raise argparse.ArgumentTypeError(f'time: invalid duration "{text}"')
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    if not body:
        raise argparse.ArgumentTypeError(f'time: invalid duration "{text}"')
    return sign * total


def format_duration(seconds: float) -> str:
    """Go's Duration.String(): 31536000 -> ``8760h0m0s``, 40 -> ``40s``, 0.2 -> ``200ms``."""
    if seconds == 0:
        return "0s"
    if abs(seconds) < 1:
        return f"{seconds * 1000:g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:g}s"
    if hours or minutes:
        text = f"{int(minutes)}m" + text
    if hours:
        text = f"{int(hours)}h" + text
    return text


def build_parser() -> argparse.ArgumentParser:
    names = ", ".join(CONTROLLERS)
    p = argparse.ArgumentParser(
        prog="mini-controller-manager",
        description="The control loops of kube-controller-manager that touch the control plane <-> node "
                    "paths, as one process talking to the apiserver's secure port with its own client "
                    "certificate. Flags and defaults follow kube-controller-manager.")
    a = p.add_argument
    a("--kubeconfig", default="", help="Path to a kubeconfig file with the controller-manager's identity "
      "(CN=system:kube-controller-manager) and the apiserver's address and CA. Required.")
    a("--cluster-signing-cert-file", default="",
      help="Filename containing a PEM-encoded X509 CA certificate used to issue cluster-scoped "
           "certificates (the kubernetes.io/* signers). Unset: the csrsigning controller does not run.")
    a("--cluster-signing-key-file", default="",
      help="Filename containing a PEM-encoded RSA or ECDSA private key used to sign cluster-scoped "
           "certificates.")
    a("--cluster-signing-duration", type=parse_duration, default=float(DEFAULT_SIGNING_DURATION_SECONDS),
      help="The max length of duration signed certificates will be given. Individual CSRs may request "
           "shorter certs by setting spec.expirationSeconds. (default 8760h0m0s)")
    a("--root-ca-file", default="",
      help="If set, this root certificate authority will be included in the kube-root-ca.crt ConfigMap "
           "of every namespace. Unset: the CA of --kubeconfig.")
    a("--controllers", type=parse_csv, default=["*"],
      help=f"A list of controllers to enable. '*' enables all on-by-default controllers, 'foo' enables "
           f"the controller named 'foo', '-foo' disables the controller named 'foo'. All controllers: "
           f"{names}. 'scheduler' is NOT part of the real kube-controller-manager: there the scheduler is "
           f"the separate kube-scheduler binary; here it runs in-process to keep the lab small. (default *)")
    a("--node-monitor-period", type=parse_duration, default=5.0,
      help="The period for syncing NodeStatus in the node lifecycle controller. (default 5s)")
    a("--node-monitor-grace-period", type=parse_duration, default=40.0,
      help="Amount of time which we allow a running Node to be unresponsive before marking it unhealthy "
           "(Ready=Unknown and tainted unreachable). (default 40s)")
    a("--allocate-node-cidrs", type=parse_bool, nargs="?", const=True, default=False,
      help="Should CIDRs for Pods be allocated on nodes (spec.podCIDR). Requires --cluster-cidr.")
    a("--cluster-cidr", default="", help="CIDR Range for Pods in cluster. Requires --allocate-node-cidrs.")
    a("--node-cidr-mask-size", type=int, default=24, help="Mask size for node cidr in cluster. (default 24)")
    a("--leader-elect", type=parse_bool, nargs="?", const=True, default=True,
      help="Start a leader election client and gain leadership (Lease kube-system/kube-controller-manager) "
           "before executing the main loop. (default true)")
    a("--leader-elect-lease-duration", type=parse_duration, default=15.0,
      help="How long non-leaders wait after the last observed renewal before taking over. (default 15s)")
    a("--leader-elect-renew-deadline", type=parse_duration, default=10.0,
      help="How long the leader keeps retrying a renewal before giving up leadership. (default 10s)")
    a("--leader-elect-retry-period", type=parse_duration, default=2.0,
      help="How long clients wait between attempts to acquire and renew leadership. (default 2s)")
    a("-v", "--v", type=int, default=2, help="Log verbosity (4 and up: debug).")
    return p


def from_args(argv: Sequence[str] | None = None) -> tuple[Config, int]:
    """Parse flags into a validated Config (and the -v level); raises ConfigError."""
    ns = build_parser().parse_args(argv)
    cfg = Config(
        kubeconfig=ns.kubeconfig, cluster_signing_cert_file=ns.cluster_signing_cert_file,
        cluster_signing_key_file=ns.cluster_signing_key_file,
        cluster_signing_duration=ns.cluster_signing_duration, root_ca_file=ns.root_ca_file,
        controllers=tuple(ns.controllers), node_monitor_period=ns.node_monitor_period,
        node_monitor_grace_period=ns.node_monitor_grace_period, allocate_node_cidrs=ns.allocate_node_cidrs,
        cluster_cidr=ns.cluster_cidr, node_cidr_mask_size=ns.node_cidr_mask_size,
        leader_elect=ns.leader_elect, leader_elect_lease_duration=ns.leader_elect_lease_duration,
        leader_elect_renew_deadline=ns.leader_elect_renew_deadline,
        leader_elect_retry_period=ns.leader_elect_retry_period)
    return validate(cfg), ns.v


def validate(cfg: Config) -> Config:
    if not cfg.kubeconfig:
        raise ConfigError("--kubeconfig is required (the controller-manager has no in-cluster config)")
    for flag, path in (("--kubeconfig", cfg.kubeconfig), ("--root-ca-file", cfg.root_ca_file),
                       ("--cluster-signing-cert-file", cfg.cluster_signing_cert_file),
                       ("--cluster-signing-key-file", cfg.cluster_signing_key_file)):
        if path and not os.path.isfile(path):
            raise ConfigError(f"{flag}: cannot read {path!r}: no such file")
    if bool(cfg.cluster_signing_cert_file) != bool(cfg.cluster_signing_key_file):
        raise ConfigError("--cluster-signing-cert-file and --cluster-signing-key-file must be given together")
    for item in cfg.controllers:
        name = _canonical(item.lstrip("-"))
        if item != "*" and name not in CONTROLLERS:
            raise ConfigError(f"--controllers: {item!r} is not in the list of known controllers: "
                              f"{', '.join(CONTROLLERS)}")
    for flag, value in (("--cluster-signing-duration", cfg.cluster_signing_duration),
                        ("--node-monitor-period", cfg.node_monitor_period),
                        ("--node-monitor-grace-period", cfg.node_monitor_grace_period),
                        ("--leader-elect-retry-period", cfg.leader_elect_retry_period)):
        if value <= 0:
            raise ConfigError(f"{flag} must be a positive duration, got {format_duration(value)}")
    if cfg.leader_elect and not (cfg.leader_elect_lease_duration > cfg.leader_elect_renew_deadline
                                 > cfg.leader_elect_retry_period):
        raise ConfigError("leader election needs --leader-elect-lease-duration > --leader-elect-renew-deadline "
                          "> --leader-elect-retry-period")
    if cfg.allocate_node_cidrs:
        _check_cidr(cfg.cluster_cidr, cfg.node_cidr_mask_size)
    return cfg


def _check_cidr(cluster_cidr: str, mask: int) -> None:
    if not cluster_cidr:
        raise ConfigError("--allocate-node-cidrs=true requires --cluster-cidr (e.g. 10.244.0.0/16)")
    try:
        net = ipaddress.ip_network(cluster_cidr)
    except ValueError as exc:
        raise ConfigError(f"--cluster-cidr: {exc}") from None
    if not net.prefixlen <= mask <= net.max_prefixlen:
        raise ConfigError(f"--node-cidr-mask-size={mask} must be between the cluster CIDR's prefix "
                          f"length ({net.prefixlen}) and {net.max_prefixlen}")
    if mask - net.prefixlen > 16:
        raise ConfigError(f"--node-cidr-mask-size={mask} is too deep for --cluster-cidr={cluster_cidr}: at "
                          "most 16 bits more than the cluster prefix (65536 node CIDRs)")
