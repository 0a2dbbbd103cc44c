"""Kubelet configuration: flags named like the real kubelet's, a KubeletConfiguration file, one frozen value.

Precedence, as in the real kubelet (cmd/kubelet/app/server.go): built-in defaults < ``--config`` file
< flags given on the command line. The built-in defaults are NOT the same with and without a file:

====================================  ======================  =================================
setting                               flag default (no file)  KubeletConfiguration default
====================================  ======================  =================================
--anonymous-auth                      true   (INSECURE)       authentication.anonymous.enabled false
--authentication-token-webhook        false                   authentication.webhook.enabled true
--authorization-mode                  AlwaysAllow (INSECURE)  authorization.mode Webhook
--read-only-port                      10255  (INSECURE)       readOnlyPort 0 (disabled)
====================================  ======================  =================================

That split is real Kubernetes (the legacy flag defaults were kept for compatibility; kubeadm
always writes a config file), so a kubelet started with flags only is wide open: anyone who can
reach 10250 may read pods and logs and run commands. The file form is the hardened switch.

A file is YAML or JSON::

    apiVersion: kubelet.config.k8s.io/v1beta1
    kind: KubeletConfiguration
    authentication: {anonymous: {enabled: false}, webhook: {enabled: true, cacheTTL: 2m0s},
                     x509: {clientCAFile: /etc/kubernetes/pki/ca.crt}}
    authorization: {mode: Webhook, webhook: {cacheAuthorizedTTL: 5m0s, cacheUnauthorizedTTL: 30s}}
    readOnlyPort: 0
    serverTLSBootstrap: true

Fields minikubelet does not implement are reported (one warning each) and ignored.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from miniapi.admission.noderestriction import (
    KUBELET_LABEL_NAMESPACES,
    KUBELET_LABELS,
    is_kubelet_label,
    is_kubernetes_label,
)
from miniapi.flags import parse_bool

KUBELET_CONFIG_API_VERSION = "kubelet.config.k8s.io/v1beta1"
AUTHZ_MODES = ("AlwaysAllow", "Webhook")


class ConfigError(ValueError):
    """A configuration the kubelet refuses to start with."""


@dataclass(frozen=True)
class KubeletConfig:
    # flags only (KubeletFlags in the real kubelet)
    kubeconfig: str = ""
    bootstrap_kubeconfig: str = ""
    hostname_override: str = ""
    node_ip: str = ""
    root_dir: str = "/var/lib/kubelet"
    cert_dir: str = ""  # "" = <root-dir>/pki
    node_labels: tuple[tuple[str, str], ...] = ()
    config_file: str = ""
    # flags that also live in KubeletConfiguration (flag defaults here; see CONFIG_FILE_DEFAULTS)
    address: str = "0.0.0.0"
    port: int = 10250
    read_only_port: int = 10255
    tls_cert_file: str = ""
    tls_private_key_file: str = ""
    client_ca_file: str = ""
    anonymous_auth: bool = True
    authentication_token_webhook: bool = False
    authentication_token_webhook_cache_ttl: float = 120.0
    authorization_mode: str = "AlwaysAllow"
    authorization_webhook_cache_authorized_ttl: float = 300.0
    authorization_webhook_cache_unauthorized_ttl: float = 30.0
    rotate_certificates: bool = False
    server_tls_bootstrap: bool = False
    register_node: bool = True
    pod_cidr: str = ""
    node_status_update_frequency: float = 10.0
    node_lease_duration_seconds: int = 40
    enable_debugging_handlers: bool = True
    max_pods: int = 110
    sync_frequency: float = 60.0
    crash_loop_back_off_max: float = 300.0
    crash_loop_back_off_initial: float = 10.0  # minikubelet only: the real kubelet hard-codes 10s
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def node_name(self) -> str:
        """--hostname-override, else the host name, lower-cased (nodeutil.GetHostname)."""
        return (self.hostname_override or socket.gethostname()).strip().lower()

    @property
    def certificate_dir(self) -> str:
        return self.cert_dir or os.path.join(self.root_dir, "pki")

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.node_labels)

    def kubelet_configuration(self) -> dict[str, Any]:
        """The effective settings as a KubeletConfiguration object (what /configz shows)."""
        return {
            "kind": "KubeletConfiguration", "apiVersion": KUBELET_CONFIG_API_VERSION,
            "address": self.address, "port": self.port, "readOnlyPort": self.read_only_port,
            "tlsCertFile": self.tls_cert_file, "tlsPrivateKeyFile": self.tls_private_key_file,
            "authentication": {
                "x509": {"clientCAFile": self.client_ca_file},
                "webhook": {"enabled": self.authentication_token_webhook,
                            "cacheTTL": go_duration(self.authentication_token_webhook_cache_ttl)},
                "anonymous": {"enabled": self.anonymous_auth}},
            "authorization": {"mode": self.authorization_mode, "webhook": {
                "cacheAuthorizedTTL": go_duration(self.authorization_webhook_cache_authorized_ttl),
                "cacheUnauthorizedTTL": go_duration(self.authorization_webhook_cache_unauthorized_ttl)}},
            "rotateCertificates": self.rotate_certificates, "serverTLSBootstrap": self.server_tls_bootstrap,
            "registerNode": self.register_node, "podCIDR": self.pod_cidr,
            "nodeStatusUpdateFrequency": go_duration(self.node_status_update_frequency),
            "nodeLeaseDurationSeconds": self.node_lease_duration_seconds,
            "enableDebuggingHandlers": self.enable_debugging_handlers, "maxPods": self.max_pods,
            "syncFrequency": go_duration(self.sync_frequency),
            "crashLoopBackOff": {"maxContainerRestartPeriod": go_duration(self.crash_loop_back_off_max)},
        }


# --- Go-style values --------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go time.Duration string (``10s``, ``1m30s``, ``500ms``, ``0``) in seconds."""
    s = str(text).strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ConfigError(f"invalid duration {text!r} (use Go syntax, e.g. 10s, 1m30s, 500ms)")
    return total


def go_duration(seconds: float) -> str:
    """How Go prints a Duration: ``2m0s``, ``30s``, ``1h0m0s``, ``500ms``."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    out = f"{int(h)}h" if h else ""
    out += f"{int(m)}m" if h or m else ""
    return out + f"{s:g}s"


# --- node labels -------------------------------------------------------------------------------------

def parse_node_labels(text: str) -> tuple[tuple[str, str], ...]:
    """``--node-labels k=v,k2=v2``, refusing kubernetes.io labels a kubelet may not set on itself.

    The real kubelet (>= 1.16, with the NodeRestriction admission plugin) only self-applies labels
    in :data:`KUBELET_LABELS` or under ``kubelet.kubernetes.io/`` / ``node.kubernetes.io/``; so
    ``node-role.kubernetes.io/worker`` is refused: an administrator sets roles with ``kubectl label``.
    """
    out: list[tuple[str, str]] = []
    unknown: list[str] = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--node-labels: {item!r} is not key=value")
        if is_kubernetes_label(key) and not is_kubelet_label(key):
            unknown.append(key)
        out.append((key, value))
    if unknown:
        raise ConfigError(
            f"unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: {sorted(unknown)}\n"
            f"--node-labels in the 'kubernetes.io' namespace must begin with an allowed prefix "
            f"({', '.join(KUBELET_LABEL_NAMESPACES)}) or be in the specifically allowed set "
            f"({', '.join(sorted(KUBELET_LABELS))}); set other labels with `kubectl label node`")
    return tuple(out)


# --- the table: flag <-> KubeletConfiguration field --------------------------------------------------


@dataclass(frozen=True)
class _Option:
    flag: str
    attr: str
    parse: Callable[[str], Any]
    config_path: str  # dotted KubeletConfiguration path, "" = flag only
    help: str
    file_default: Any = None  # the KubeletConfiguration default when it differs from the flag's


_OPTIONS: tuple[_Option, ...] = (
    _Option("--kubeconfig", "kubeconfig", str, "",
            "Path to a kubeconfig file, specifying how to connect to the API server. With "
            "--bootstrap-kubeconfig it is written after TLS bootstrapping."),
    _Option("--bootstrap-kubeconfig", "bootstrap_kubeconfig", str, "",
            "Path to a kubeconfig file used to get a client certificate for the kubelet (TLS "
            "bootstrapping) when --kubeconfig does not exist or holds no valid certificate."),
    _Option("--hostname-override", "hostname_override", str, "",
            "If non-empty, use this string as identification (the node name) instead of the hostname."),
    _Option("--node-ip", "node_ip", str, "",
            "IP address of the node (status.addresses InternalIP). Default: --address when it is a "
            "specific IP, else the address the hostname resolves to, else 127.0.0.1."),
    _Option("--root-dir", "root_dir", str, "",
            "Directory path for managing kubelet files (pod state, workdirs, CRI logs). Default "
            "/var/lib/kubelet; local runs pass a temporary directory."),
    _Option("--cert-dir", "cert_dir", str, "",
            "The directory where the TLS certs are located (default <root-dir>/pki)."),
    _Option("--node-labels", "node_labels", parse_node_labels, "",
            "Labels to add when registering the node, key=value,...; kubernetes.io labels only from "
            "the kubelet's allowed set (node-role.* is refused, as in real Kubernetes)."),
    _Option("--address", "address", str, "address",
            "The IP address for the kubelet to serve on (default 0.0.0.0: every interface)."),
    _Option("--port", "port", int, "port", "The port for the kubelet to serve on (default 10250)."),
    _Option("--read-only-port", "read_only_port", int, "readOnlyPort",
            "The read-only port for the kubelet to serve on with no authentication/authorization "
            "(0 disables). INSECURE legacy flag default 10255 (the config-file default is 0).", 0),
    _Option("--tls-cert-file", "tls_cert_file", str, "tlsCertFile",
            "File containing the x509 certificate for HTTPS. If unset (and no serverTLSBootstrap), a "
            "self-signed certificate and key are generated in --cert-dir (kubelet.crt, kubelet.key)."),
    _Option("--tls-private-key-file", "tls_private_key_file", str, "tlsPrivateKeyFile",
            "File containing the x509 private key matching --tls-cert-file."),
    _Option("--client-ca-file", "client_ca_file", str, "authentication.x509.clientCAFile",
            "Client certificates signed by these CAs authenticate (CN = user, O = groups)."),
    _Option("--anonymous-auth", "anonymous_auth", parse_bool, "authentication.anonymous.enabled",
            "Enables anonymous requests to the kubelet server (system:anonymous). INSECURE flag "
            "default true (the config-file default is false).", False),
    _Option("--authentication-token-webhook", "authentication_token_webhook", parse_bool,
            "authentication.webhook.enabled",
            "Use the TokenReview API to authenticate bearer tokens (flag default false; config-file "
            "default true).", True),
    _Option("--authentication-token-webhook-cache-ttl", "authentication_token_webhook_cache_ttl",
            parse_duration, "authentication.webhook.cacheTTL",
            "The duration to cache responses from the webhook token authenticator (default 2m0s)."),
    _Option("--authorization-mode", "authorization_mode", str, "authorization.mode",
            "Authorization mode for the kubelet server: AlwaysAllow or Webhook (SubjectAccessReview). "
            "INSECURE flag default AlwaysAllow (the config-file default is Webhook).", "Webhook"),
    _Option("--authorization-webhook-cache-authorized-ttl", "authorization_webhook_cache_authorized_ttl",
            parse_duration, "authorization.webhook.cacheAuthorizedTTL",
            "The duration to cache 'authorized' responses from the webhook authorizer (default 5m0s)."),
    _Option("--authorization-webhook-cache-unauthorized-ttl",
            "authorization_webhook_cache_unauthorized_ttl", parse_duration,
            "authorization.webhook.cacheUnauthorizedTTL",
            "The duration to cache 'unauthorized' responses from the webhook authorizer (default 30s)."),
    _Option("--rotate-certificates", "rotate_certificates", parse_bool, "rotateCertificates",
            "Auto rotate the kubelet client certificate by requesting a new one as it nears expiry."),
    _Option("--rotate-server-certificates", "server_tls_bootstrap", parse_bool, "serverTLSBootstrap",
            "Request the serving certificate from the cluster (signer kubernetes.io/kubelet-serving) "
            "and rotate it; the CSR stays Pending until approved (kubectl certificate approve)."),
    _Option("--register-node", "register_node", parse_bool, "registerNode",
            "Register the node with the apiserver (default true)."),
    _Option("--pod-cidr", "pod_cidr", str, "podCIDR",
            "The CIDR to use for pod IP addresses (spec.podCIDR of the Node). Unset: the node's podCIDR "
            "if set, else pods share the node IP."),
    _Option("--node-status-update-frequency", "node_status_update_frequency", parse_duration,
            "nodeStatusUpdateFrequency", "How often the kubelet posts node status (default 10s)."),
    _Option("--enable-debugging-handlers", "enable_debugging_handlers", parse_bool,
            "enableDebuggingHandlers",
            "Enables the server endpoints for log collection and running commands (default true)."),
    _Option("--max-pods", "max_pods", int, "maxPods", "Number of pods that can run on this kubelet."),
    _Option("--sync-frequency", "sync_frequency", parse_duration, "syncFrequency",
            "Max period between synchronizing running containers and config (default 1m0s)."),
    _Option("--crash-loop-back-off-max", "crash_loop_back_off_max", parse_duration,
            "crashLoopBackOff.maxContainerRestartPeriod",
            "Maximum back-off between container restarts (default 5m0s)."),
    _Option("--crash-loop-back-off-initial", "crash_loop_back_off_initial", parse_duration, "",
            "minikubelet only (the real kubelet hard-codes 10s): the first restart back-off."),
)
_BY_PATH = {o.config_path: o for o in _OPTIONS if o.config_path}
IGNORED_FILE_FIELDS = ("kind", "apiVersion")


def _flag_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """argparse shows an ArgumentTypeError's own message (a ValueError only as "invalid value")."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="minikubelet", argument_default=argparse.SUPPRESS,
        description="A small, faithful kubelet: TLS bootstrapping, Node registration and heartbeats, pods "
                    "run as local processes, and the kubelet API on 10250/10255. Flags and defaults follow "
                    "the real kubelet, insecure ones included; --config FILE gives the hardened defaults.")
    p.add_argument("--config", dest="config_file",
                   help="A KubeletConfiguration file (kubelet.config.k8s.io/v1beta1, YAML or JSON). Flags "
                        "given on the command line override it; its defaults are the secure ones.")
    for opt in _OPTIONS:
        metavar = {parse_bool: "BOOL", parse_duration: "DURATION", int: "INT"}.get(opt.parse, "STRING")
        kwargs: dict[str, Any] = {"dest": opt.attr, "type": _flag_type(opt.parse), "help": opt.help,
                                  "metavar": metavar}
        if opt.parse is parse_bool:
            kwargs.update(nargs="?", const=True)
        p.add_argument(opt.flag, **kwargs)
    p.add_argument("-v", "--v", dest="verbosity", type=int, help="Log verbosity (default 1; 4 = debug).")
    return p


def from_args(argv: Sequence[str] | None = None) -> tuple[KubeletConfig, int]:
    """Flags (+ the --config file) into a validated KubeletConfig and the -v level; raises ConfigError."""
    try:
        ns = vars(build_parser().parse_args(argv))
    except argparse.ArgumentTypeError as e:  # pragma: no cover - argparse reports these itself
        raise ConfigError(str(e)) from None
    verbosity = int(ns.pop("verbosity", 1))
    values: dict[str, Any] = {}
    warnings: list[str] = []
    config_file = ns.get("config_file", "")
    if config_file:
        values, warnings = load_config_file(config_file)
    values.update(ns)
    return validate(replace(KubeletConfig(**values), warnings=tuple(warnings))), verbosity


def load_config_file(path: str) -> tuple[dict[str, Any], list[str]]:
    """The file's settings (with the KubeletConfiguration defaults) as KubeletConfig keyword arguments."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = _load_yaml(f.read())
    except OSError as e:
        raise ConfigError(f"failed to load kubelet config file {path!r}: {e.strerror}") from None
    except ValueError as e:
        raise ConfigError(f"failed to load kubelet config file {path!r}: {e}") from None
    return config_from_document(doc if doc is not None else {}, path)


def config_from_document(doc: Any, path: str = "<config>") -> tuple[dict[str, Any], list[str]]:
    if not isinstance(doc, Mapping):
        raise ConfigError(f"kubelet config file {path!r} is not a mapping")
    if doc.get("kind", "KubeletConfiguration") != "KubeletConfiguration" or \
            doc.get("apiVersion", KUBELET_CONFIG_API_VERSION) != KUBELET_CONFIG_API_VERSION:
        raise ConfigError(f"kubelet config file {path!r}: expected kind KubeletConfiguration, apiVersion "
                          f"{KUBELET_CONFIG_API_VERSION}")
    values: dict[str, Any] = {o.attr: o.file_default for o in _OPTIONS if o.file_default is not None}
    warnings: list[str] = []
    for dotted, value in _flatten(doc):
        if dotted in IGNORED_FILE_FIELDS:
            continue
        if dotted == "nodeLeaseDurationSeconds":
            values["node_lease_duration_seconds"] = int(value)
            continue
        opt = _BY_PATH.get(dotted)
        if opt is None:
            warnings.append(f"{path}: field {dotted} is not implemented by minikubelet; ignored")
            continue
        try:
            values[opt.attr] = value if isinstance(value, bool | int) and opt.parse is not str \
                else opt.parse(str(value))
        except (ConfigError, ValueError, argparse.ArgumentTypeError) as e:
            raise ConfigError(f"{path}: field {dotted}: {e}") from None
    return values, warnings


def _flatten(doc: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in doc.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and dotted not in _BY_PATH:
            out += _flatten(value, dotted + ".")
        elif not (isinstance(value, Mapping) and not value):
            out.append((dotted, value))
    return out


def _load_yaml(text: str) -> Any:
    try:
        import yaml  # optional: full YAML when PyYAML is installed
    except ImportError:
        from pki import miniyaml

        return miniyaml.load(text)
    return yaml.safe_load(text)


def default_node_ip(cfg: KubeletConfig) -> str:
    """--node-ip, else a specific --address, else what the hostname resolves to, else 127.0.0.1."""
    if cfg.node_ip:
        return cfg.node_ip
    try:
        addr = ipaddress.ip_address(cfg.address)
        if not addr.is_unspecified:
            return str(addr)
    except ValueError:
        pass
    try:
        return socket.gethostbyname(cfg.node_name)
    except OSError:
        return "127.0.0.1"


def validate(cfg: KubeletConfig) -> KubeletConfig:
    """Refuse nonsense with a message that says what to pass instead; warn about insecure settings."""
    warnings = list(cfg.warnings)
    if not cfg.kubeconfig:
        raise ConfigError("--kubeconfig is required (the real kubelet runs standalone without it; "
                          "minikubelet needs an apiserver)")
    if cfg.authorization_mode not in AUTHZ_MODES:
        raise ConfigError(f"--authorization-mode {cfg.authorization_mode!r}: must be one of "
                          f"{', '.join(AUTHZ_MODES)}")
    for name, port in (("--port", cfg.port), ("--read-only-port", cfg.read_only_port)):
        if not 0 <= port < 65536 or (name == "--port" and port == 0):
            raise ConfigError(f"{name} {port}: must be a TCP port (1-65535{', or 0 to disable' if port else ''})")
    if bool(cfg.tls_cert_file) != bool(cfg.tls_private_key_file):
        raise ConfigError("--tls-cert-file and --tls-private-key-file must be given together")
    for flag, value in (("--address", cfg.address), ("--node-ip", cfg.node_ip)):
        if value:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ConfigError(f"{flag} {value!r} is not an IP address") from None
    if cfg.pod_cidr:
        try:
            ipaddress.ip_network(cfg.pod_cidr)
        except ValueError as e:
            raise ConfigError(f"--pod-cidr {cfg.pod_cidr!r}: {e}") from None
    if cfg.node_status_update_frequency <= 0:
        raise ConfigError("--node-status-update-frequency must be positive")
    if cfg.anonymous_auth and cfg.authorization_mode == "AlwaysAllow":
        warnings.append("INSECURE: anonymous requests are allowed everything on the kubelet API "
                        "(--anonymous-auth=true with --authorization-mode=AlwaysAllow); use --config with "
                        "the KubeletConfiguration defaults or pass --anonymous-auth=false "
                        "--authorization-mode=Webhook")
    if cfg.read_only_port:
        warnings.append(f"INSECURE: read-only port {cfg.read_only_port} serves pods and stats with no "
                        "authentication; --read-only-port=0 disables it")
    return replace(cfg, warnings=tuple(warnings))
