"""Apiserver configuration: a frozen dataclass built from flags named like kube-apiserver's.

Defaults are the real ones, insecure ones included (``--anonymous-auth=true``,
``--authorization-mode=AlwaysAllow``, no ``--kubelet-certificate-authority``); each such flag says so in
its help text, and hardening is the documented switch. :func:`validate` refuses to start on missing
or contradictory security configuration with a message that says why and what to pass instead.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from miniapi.flags import parse_bool, parse_csv

AUTHZ_MODES = ("AlwaysAllow", "AlwaysDeny", "Node", "RBAC")
ADDRESS_TYPES = ("Hostname", "InternalDNS", "InternalIP", "ExternalDNS", "ExternalIP")


class ConfigError(ValueError):
    """A configuration the apiserver refuses to start with."""


@dataclass(frozen=True)
class Config:
    secure_port: int = 6443
    bind_address: str = "0.0.0.0"
    advertise_address: str = ""
    cert_dir: str = "/var/run/kubernetes"
    tls_cert_file: str = ""
    tls_private_key_file: str = ""
    client_ca_file: str = ""
    token_auth_file: str = ""
    anonymous_auth: bool = True
    authorization_mode: tuple[str, ...] = ("AlwaysAllow",)
    service_account_key_files: tuple[str, ...] = ()
    service_account_signing_key_file: str = ""
    service_account_issuers: tuple[str, ...] = ()
    api_audiences: tuple[str, ...] = ()
    service_account_max_token_expiration: int = 0
    enable_bootstrap_token_auth: bool = False
    kubelet_certificate_authority: str = ""
    kubelet_client_certificate: str = ""
    kubelet_client_key: str = ""
    kubelet_preferred_address_types: tuple[str, ...] = ADDRESS_TYPES
    kubelet_timeout: float = 5.0
    service_cluster_ip_range: str = "10.96.0.0/12"
    data_dir: str = ""
    audit_log_path: str = ""
    # Events also kept in memory (AuditLog's ring) for whoever shares the process: the testing kit and
    # in-process tests read them. The ``miniapi`` command sets 0: nobody can read its memory.
    audit_memory_events: int = 2000
    min_request_timeout: int = 1800
    ssh_user: str = ""
    ssh_keyfile: str = ""
    ssh_known_hosts: str = ""
    ssh_port: int = 22
    egress_selector_config_file: str = ""
    enable_admission_plugins: tuple[str, ...] = ()
    disable_admission_plugins: tuple[str, ...] = ()
    service_account_extend_token_expiration: bool = True
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def admission_plugins(self) -> tuple[str, ...]:
        """The effective admission plugins: the real default-on list, plus enabled, minus disabled."""
        from miniapi.admission import effective_plugins

        return effective_plugins(self.enable_admission_plugins, self.disable_admission_plugins)

    @property
    def audiences(self) -> tuple[str, ...]:
        """--api-audiences, defaulting to the issuers (as the real apiserver does)."""
        return self.api_audiences or self.service_account_issuers


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="miniapi",
        description="A small, faithful Kubernetes apiserver for teaching control plane <-> node paths. "
                    "Flags and defaults follow kube-apiserver, insecure defaults included.")
    a = p.add_argument
    a("--secure-port", type=int, default=6443,
      help="The port on which to serve HTTPS with authentication and authorization (default 6443; the "
           "docker lab uses 443, the port of the source page).")
    a("--bind-address", default="0.0.0.0", help="The IP address on which to listen for --secure-port.")
    a("--advertise-address", default="",
      help="The IP address on which to advertise the apiserver to members of the cluster (the "
           "endpoint of the default/kubernetes service). Defaults to --bind-address or 127.0.0.1.")
    a("--cert-dir", default="/var/run/kubernetes",
      help="Where a self-signed serving certificate is generated when --tls-cert-file is not given.")
    a("--tls-cert-file", default="", help="File containing the default x509 certificate for HTTPS.")
    a("--tls-private-key-file", default="", help="File containing the x509 private key matching "
      "--tls-cert-file.")
    a("--client-ca-file", default="",
      help="Any request presenting a client certificate signed by one of the authorities in this file "
           "is authenticated with an identity corresponding to the CommonName (user) and Organization "
           "(groups) of the client certificate.")
    a("--token-auth-file", default="",
      help="If set, the file that will be used to secure the secure port of the API server via token "
           "authentication (CSV: token,user,uid,\"group1,group2\").")
    a("--anonymous-auth", type=parse_bool, default=True,
      help="Enables anonymous requests to the secure port. Requests that are not rejected by another "
           "authentication method are treated as anonymous requests (system:anonymous, group "
           "system:unauthenticated). INSECURE DEFAULT true; harden with --anonymous-auth=false or an "
           "authorizer that grants anonymous nothing.")
    a("--authorization-mode", type=parse_csv, default=None,
      help="Ordered list of plug-ins to do authorization on the secure port: AlwaysAllow, AlwaysDeny, "
           "Node, RBAC. INSECURE DEFAULT AlwaysAllow (every authenticated or anonymous request is "
           "allowed); harden with --authorization-mode=Node,RBAC as kubeadm does.")
    a("--service-account-key-file", action="append", default=[],
      help="PEM-encoded public (or private) key used to verify service-account tokens. Repeatable. "
           "Defaults to the public half of --service-account-signing-key-file.")
    a("--service-account-signing-key-file", default="",
      help="Path to the private key used to sign service-account tokens (required).")
    a("--service-account-issuer", action="append", default=[],
      help="Identifier of the service account token issuer (the iss claim). Required. Repeatable: "
           "the first signs, all are accepted.")
    a("--api-audiences", type=parse_csv, default=[],
      help="Identifiers of the API. Tokens must carry at least one. Defaults to the issuers.")
    a("--service-account-max-token-expiration", type=int, default=0,
      help="The maximum validity duration of a token created by the service account token issuer, in "
           "seconds; a TokenRequest asking for more gets this. 0: no limit. Must be at least 3600.")
    a("--service-account-extend-token-expiration", type=parse_bool, default=True,
      help="Turns on projected service account expiration extension during token generation: a token "
           "bound to a pod that asks for the kubelet's default 3607 s is valid for 1 year, with a "
           "kubernetes.io warnafter claim at 3607 s; using it after that is recorded (audit annotation "
           "authentication.k8s.io/stale-token). INSECURE DEFAULT true (long-lived tokens, for migration "
           "from legacy tokens); harden with false.")
    a("--enable-bootstrap-token-auth", type=parse_bool, nargs="?", const=True, default=False,
      help="Allow bootstrap tokens (Secrets bootstrap-token-<id> in kube-system) to authenticate, for "
           "kubelet TLS bootstrapping.")
    a("--kubelet-certificate-authority", default="",
      help="Path to a cert file for the certificate authority used to verify kubelet serving certs. "
           "INSECURE DEFAULT unset: the apiserver does NOT verify the kubelet's serving certificate, "
           "so apiserver -> kubelet connections (logs, exec, port-forward) can be intercepted.")
    a("--kubelet-client-certificate", default="", help="Client certificate for TLS to kubelets.")
    a("--kubelet-client-key", default="", help="Client key for TLS to kubelets.")
    a("--kubelet-preferred-address-types", type=parse_csv, default=list(ADDRESS_TYPES),
      help="List of the preferred NodeAddressTypes to use for kubelet connections (the first the node "
           "reports wins). Unlike the real apiserver, a name (Hostname/InternalDNS/ExternalDNS) that does not "
           "resolve is skipped for the next type; kubeadm passes InternalIP,ExternalIP,Hostname.")
    a("--kubelet-timeout", type=float, default=5.0,
      help="Timeout (s) for kubelet calls: connect, TLS handshake and response headers (a streamed body, "
           "e.g. logs -f, may then last as long as it likes).")
    a("--service-cluster-ip-range", default="10.96.0.0/12",
      help="A CIDR range from which to assign service cluster IPs.")
    a("--data-dir", default="",
      help="Directory of the embedded SQLite store (our stand-in for etcd). Unset: in memory only.")
    a("--audit-log-path", default="",
      help="If set, all requests are logged as audit.k8s.io/v1 Events (JSON lines) to this file; '-' "
           "means standard out.")
    a("--min-request-timeout", type=int, default=1800,
      help="Minimum seconds a watch stays open (the server picks between 1x and 2x).")
    a("--ssh-user", default="",
      help="If non-empty, use secure SSH proxy to the nodes, using this user name (cut to 32 characters). "
           "DEPRECATED since 1.9, removed in 1.22 (use --egress-selector-config-file). INSECURE DEFAULT: node "
           "host keys are NOT verified, as in the real apiserver; harden with --ssh-known-hosts.")
    a("--ssh-keyfile", default="",
      help="If non-empty, use secure SSH proxy to the nodes, using this user keyfile (an RSA 2048 pair "
           "KEYFILE/KEYFILE.pub is generated if KEYFILE.pub is missing). DEPRECATED since 1.9, removed in 1.22.")
    a("--ssh-known-hosts", default="",
      help="Not a real kube-apiserver flag: our hardening switch for the SSH tunnels. An OpenSSH known_hosts "
           "file: unknown nodes are recorded on first use, a node presenting a different host key is refused.")
    a("--ssh-port", type=int, default=22,
      help="Not a real flag (the real tunnels always used port 22): the nodes' SSH port, for hosts where a "
           "test cannot bind 22 on the node addresses.")
    a("--egress-selector-config-file", default="",
      help="File with apiserver egress selector configuration (EgressSelectorConfiguration, "
           "apiserver.k8s.io/v1beta1): selection 'cluster' with proxyProtocol HTTPConnect over uds or tcp sends "
           "every apiserver -> node/pod/service connection through a Konnectivity server.")
    a("--enable-admission-plugins", type=parse_csv, default=[],
      help="Admission plugins to enable in addition to the default-on ones (NamespaceLifecycle, "
           "ServiceAccount, ...). NodeRestriction is NOT on by default (INSECURE DEFAULT: a kubelet may then "
           "modify other nodes and any pod's status); kubeadm sets --enable-admission-plugins=NodeRestriction.")
    a("--disable-admission-plugins", type=parse_csv, default=[],
      help="Admission plugins to disable although they are in the default-on list.")
    a("-v", "--v", type=int, default=1, help="Log verbosity.")
    return p


def from_args(argv: Sequence[str] | None = None) -> tuple[Config, int]:
    """Parse flags into a validated Config (and the -v level); raises ConfigError."""
    ns = build_parser().parse_args(argv)
    cfg = Config(
        secure_port=ns.secure_port, bind_address=ns.bind_address, advertise_address=ns.advertise_address,
        cert_dir=ns.cert_dir, tls_cert_file=ns.tls_cert_file, tls_private_key_file=ns.tls_private_key_file,
        client_ca_file=ns.client_ca_file, token_auth_file=ns.token_auth_file,
        anonymous_auth=ns.anonymous_auth,
        authorization_mode=tuple(ns.authorization_mode) if ns.authorization_mode is not None
        else ("AlwaysAllow",),
        service_account_key_files=tuple(ns.service_account_key_file),
        service_account_signing_key_file=ns.service_account_signing_key_file,
        service_account_issuers=tuple(ns.service_account_issuer), api_audiences=tuple(ns.api_audiences),
        service_account_max_token_expiration=ns.service_account_max_token_expiration,
        enable_bootstrap_token_auth=ns.enable_bootstrap_token_auth,
        kubelet_certificate_authority=ns.kubelet_certificate_authority,
        kubelet_client_certificate=ns.kubelet_client_certificate, kubelet_client_key=ns.kubelet_client_key,
        kubelet_preferred_address_types=tuple(ns.kubelet_preferred_address_types),
        kubelet_timeout=ns.kubelet_timeout, service_cluster_ip_range=ns.service_cluster_ip_range,
        data_dir=ns.data_dir, audit_log_path=ns.audit_log_path, min_request_timeout=ns.min_request_timeout,
        ssh_user=ns.ssh_user, ssh_keyfile=ns.ssh_keyfile, ssh_known_hosts=ns.ssh_known_hosts, ssh_port=ns.ssh_port,
        egress_selector_config_file=ns.egress_selector_config_file,
        enable_admission_plugins=tuple(ns.enable_admission_plugins),
        disable_admission_plugins=tuple(ns.disable_admission_plugins),
        service_account_extend_token_expiration=ns.service_account_extend_token_expiration)
    return validate(cfg), ns.v


def _need_file(flag: str, path: str) -> None:
    if path and not os.path.isfile(path):
        raise ConfigError(f"{flag}: cannot read {path!r}: no such file")


def validate(cfg: Config) -> Config:
    """Refuse unsafe nonsense; return cfg with the warnings the insecure defaults deserve."""
    warnings: list[str] = []
    if not 0 < cfg.secure_port < 65536:
        raise ConfigError("--secure-port must be between 1 and 65535 (there is no insecure port to fall "
                          "back on)")
    if bool(cfg.tls_cert_file) != bool(cfg.tls_private_key_file):
        raise ConfigError("--tls-cert-file and --tls-private-key-file must be given together")
    if bool(cfg.kubelet_client_certificate) != bool(cfg.kubelet_client_key):
        raise ConfigError("--kubelet-client-certificate and --kubelet-client-key must be given together")
    if not cfg.service_account_issuers:
        raise ConfigError("--service-account-issuer is a required flag (e.g. "
                          "https://kubernetes.default.svc.cluster.local)")
    if not cfg.service_account_signing_key_file:
        raise ConfigError("--service-account-signing-key-file and --service-account-issuer are required "
                          "flags")
    for flag, path in (("--tls-cert-file", cfg.tls_cert_file), ("--tls-private-key-file",
                       cfg.tls_private_key_file), ("--client-ca-file", cfg.client_ca_file),
                       ("--token-auth-file", cfg.token_auth_file),
                       ("--service-account-signing-key-file", cfg.service_account_signing_key_file),
                       ("--kubelet-certificate-authority", cfg.kubelet_certificate_authority),
                       ("--kubelet-client-certificate", cfg.kubelet_client_certificate),
                       ("--kubelet-client-key", cfg.kubelet_client_key)):
        _need_file(flag, path)
    for path in cfg.service_account_key_files:
        _need_file("--service-account-key-file", path)
    modes = cfg.authorization_mode
    if not modes:
        raise ConfigError("--authorization-mode must name at least one mode (refusing to start without "
                          "authorization)")
    for mode in modes:
        if mode not in AUTHZ_MODES:
            raise ConfigError(f"--authorization-mode: unknown mode {mode!r}; choose from "
                              f"{', '.join(AUTHZ_MODES)}")
    if len(set(modes)) != len(modes):
        raise ConfigError(f"--authorization-mode: mode specified more than once: {','.join(modes)}")
    for t in cfg.kubelet_preferred_address_types:
        if t not in ADDRESS_TYPES:
            raise ConfigError(f"--kubelet-preferred-address-types: unknown type {t!r}")
    try:
        net = ipaddress.ip_network(cfg.service_cluster_ip_range)
    except ValueError as exc:
        raise ConfigError(f"--service-cluster-ip-range: {exc}") from None
    if net.num_addresses < 8:
        raise ConfigError("--service-cluster-ip-range is too small (need at least a /29)")
    if "AlwaysAllow" in modes:
        warnings.append("INSECURE: --authorization-mode includes AlwaysAllow: every request is allowed "
                        "(harden with --authorization-mode=Node,RBAC)")
        if cfg.anonymous_auth:
            warnings.append("INSECURE: --anonymous-auth=true with AlwaysAllow: anyone who reaches the "
                            "port is cluster-admin")
    if not cfg.kubelet_certificate_authority:
        warnings.append("INSECURE: --kubelet-certificate-authority unset: kubelet serving certificates "
                        "are not verified (apiserver -> kubelet connections can be intercepted)")
    warnings.extend(_validate_tunnels(cfg))
    warnings.extend(_validate_admission(cfg))
    warnings.extend(_validate_token_expiration(cfg))
    if not cfg.client_ca_file and not cfg.token_auth_file:
        warnings.append("no --client-ca-file and no --token-auth-file: only service-account, bootstrap "
                        "and anonymous authentication are possible")
    return _replace(cfg, warnings=tuple(warnings))


def _go_duration(seconds: int) -> str:
    """time.Duration's String() for whole seconds: 3600 -> 1h0m0s, 600 -> 10m0s, 30 -> 30s."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes}m{secs}s" if hours else f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _validate_token_expiration(cfg: Config) -> list[str]:
    """kube-apiserver's checks of --service-account-max-token-expiration against the extension."""
    from miniapi.registry.serviceaccount import EXPIRATION_EXTENSION_SECONDS, TOKEN_EXPIRATION_SECONDS

    limit = cfg.service_account_max_token_expiration
    if not limit:
        return []
    if not 3600 <= limit <= 1 << 32:
        raise ConfigError("the service-account-max-token-expiration must be between 1 hour and 2^32 seconds")
    if not cfg.service_account_extend_token_expiration:
        return []
    warnings = []
    if limit < TOKEN_EXPIRATION_SECONDS:
        warnings.append("service-account-extend-token-expiration is true, in order to correctly trigger safe "
                        "transition logic, service-account-max-token-expiration must be set longer than "
                        f"{TOKEN_EXPIRATION_SECONDS} seconds (currently {_go_duration(limit)})")
    if limit < EXPIRATION_EXTENSION_SECONDS:
        warnings.append(f"service-account-extend-token-expiration is true, enabling tokens valid up to "
                        f"{EXPIRATION_EXTENSION_SECONDS} seconds, which is longer than "
                        f"service-account-max-token-expiration set to {_go_duration(limit)} seconds")
    return warnings


def _validate_admission(cfg: Config) -> list[str]:
    """Real plugin names only (kube-apiserver's messages); built-in ones cannot be switched off here."""
    from miniapi.admission import BUILT_IN, IMPLEMENTED, KNOWN

    for flag, names in (("enable-admission-plugins", cfg.enable_admission_plugins),
                        ("disable-admission-plugins", cfg.disable_admission_plugins)):
        for name in names:
            if name not in KNOWN:
                raise ConfigError(f"{flag} plugin {name!r} is unknown".replace("'", '"'))
    both = sorted(set(cfg.enable_admission_plugins) & set(cfg.disable_admission_plugins))
    if both:
        raise ConfigError(f"[{' '.join(both)}] in enable-admission-plugins and disable-admission-plugins "
                          "overlapped")
    for name in cfg.disable_admission_plugins:
        if name in BUILT_IN:
            raise ConfigError(f"--disable-admission-plugins: {name} is built into miniapi's request handling "
                              "and cannot be disabled")
    warnings = [f"admission plugin {name} is accepted but not implemented by miniapi (nothing for it to act on)"
                for name in cfg.enable_admission_plugins if name not in IMPLEMENTED]
    if "Node" in cfg.authorization_mode and "NodeRestriction" not in cfg.admission_plugins:
        warnings.append("INSECURE: admission plugin NodeRestriction is not enabled: a kubelet may modify other "
                        "nodes and the status of pods on other nodes (harden with "
                        "--enable-admission-plugins=NodeRestriction, as kubeadm does)")
    return warnings


def _validate_tunnels(cfg: Config) -> list[str]:
    """--ssh-* (historical SSH tunnels) and --egress-selector-config-file (Konnectivity): one or neither."""
    if bool(cfg.ssh_user) != bool(cfg.ssh_keyfile):
        raise ConfigError("--ssh-user and --ssh-keyfile must be given together")
    if cfg.ssh_known_hosts and not cfg.ssh_user:
        raise ConfigError("--ssh-known-hosts only applies to SSH tunnels (--ssh-user/--ssh-keyfile)")
    if not 0 < cfg.ssh_port < 65536:
        raise ConfigError("--ssh-port must be between 1 and 65535")
    if cfg.ssh_user and cfg.egress_selector_config_file:
        raise ConfigError("--ssh-user/--ssh-keyfile and --egress-selector-config-file are alternatives: the SSH "
                          "tunnels were removed in 1.22 in favour of the egress selector")
    warnings: list[str] = []
    if cfg.egress_selector_config_file:
        from miniapi.proxy.egress import EgressConfigError, load

        try:
            load(cfg.egress_selector_config_file)
        except EgressConfigError as exc:
            raise ConfigError(str(exc)) from None
    if cfg.ssh_user:
        warnings += ["Flag --ssh-user has been deprecated, This flag will be removed in a future version.",
                     "Flag --ssh-keyfile has been deprecated, This flag will be removed in a future version."]
        if not cfg.ssh_known_hosts:
            warnings.append("INSECURE: SSH tunnels do not verify the nodes' host keys (the historical behaviour): "
                            "whoever answers on a node's address gets its tunnel; harden with --ssh-known-hosts")
    return warnings


def _replace(cfg: Config, **changes: object) -> Config:
    from dataclasses import replace

    return replace(cfg, **changes)  # type: ignore[arg-type]
