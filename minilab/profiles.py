"""The profile switch: for every control plane <-> node path, the insecure Kubernetes default or the
hardened setting, as ONE data table.

A profile (``insecure`` or ``hardened``) picks a column for every row; ``--set PATH=insecure|hardened``
overrides single rows, so a learner can open or close one path at a time and watch what changes::

    minilab up --profile hardened --set kubelet-readonly=insecure   # all hardened but port 10255

Each row names the component whose flags it sets, the flags of both columns, what the hardened
column changes, and the sentence of the source page (*Master-Node Kommunikation*, docs/ seed) that
asks for it. Flags of the ``insecure`` column are the real defaults of kube-apiserver and kubelet
(the kubelet's *flag* defaults; its config-file defaults are the hardened ones).

Not a row: ``--authorization-mode`` of the apiserver is ``Node,RBAC`` in BOTH profiles, as kubeadm
sets it. The real default, ``AlwaysAllow``, would let every user (anonymous too) do everything, which
also voids the Node authorizer and RBAC exercises; ``miniapi --authorization-mode=AlwaysAllow`` shows
it on its own.

Serving certificates (row ``kubelet-serving-cert``) differ for nodes joined with a bootstrap token:
they have no pre-made certificate, so the hardened column asks the cluster for one
(``--rotate-server-certificates``: a ``kubernetes.io/kubelet-serving`` CSR that stays Pending until
``kubectl certificate approve``); until then they serve a self-signed certificate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    INSECURE = "insecure"
    HARDENED = "hardened"


class Component(StrEnum):
    APISERVER = "apiserver"
    KUBELET = "kubelet"
    SSH_TUNNEL = "ssh"  # apiserver flags that apply only with --ssh-user/--ssh-keyfile (the lab's LAB_TUNNEL=ssh)


@dataclass(frozen=True)
class PathSetting:
    """One row: ``name`` is what ``--set`` takes; flags may hold ``{ca}``, ``{cert}``, ``{key}``."""

    name: str
    component: Component
    insecure: tuple[str, ...]
    hardened: tuple[str, ...]
    why: str
    seed: str
    hardened_joined: tuple[str, ...] | None = None  # for a node joined by bootstrap token, if different

    def flags(self, level: Level, *, joined: bool = False) -> tuple[str, ...]:
        if level is Level.INSECURE:
            return self.insecure
        return self.hardened_joined if joined and self.hardened_joined is not None else self.hardened


PATHS: tuple[PathSetting, ...] = (
    PathSetting(
        "apiserver-anonymous", Component.APISERVER,
        ("--anonymous-auth=true",), ("--anonymous-auth=false",),
        "requests without credentials are system:anonymous (insecure) or refused with 401 (hardened)",
        "Eine oder mehrere Formen von Autorisierung sollte aktiviert sein, insbesondere wenn anonyme "
        "Anfragen [...] aktiviert sind."),
    PathSetting(
        "apiserver-kubelet-ca", Component.APISERVER,
        (), ("--kubelet-certificate-authority={ca}",),
        "the apiserver verifies the kubelet's serving certificate (logs, exec, port-forward) against the CA",
        "Standardmäßig überprüft der Apiserver das Serverzertifikat des Kubelet nicht, was die Verbindung "
        "[...] angreifbar für Man-in-the-Middle-Angriffe macht"),
    PathSetting(
        "kubelet-serving-cert", Component.KUBELET,
        (), ("--tls-cert-file={cert}", "--tls-private-key-file={key}"),
        "the kubelet serves a CA-signed certificate instead of the self-signed one it makes by default",
        "Um diese Verbindung zu überprüfen, verwenden Sie das Flag `--kubelet-certificate-authority`, um "
        "dem Apiserver ein Stammzertifikatbündel bereitzustellen",
        hardened_joined=("--rotate-server-certificates",)),
    PathSetting(
        "kubelet-authn", Component.KUBELET,
        ("--anonymous-auth=true", "--authentication-token-webhook=false"),
        ("--anonymous-auth=false", "--authentication-token-webhook=true", "--client-ca-file={ca}"),
        "the kubelet API refuses anonymous requests (401) and knows client certs and bearer tokens",
        "Ausserdem sollte Kubelet Authentifizierung und/oder Autorisierung aktiviert sein, um die "
        "kubelet-API zu sichern."),
    PathSetting(
        "kubelet-authz", Component.KUBELET,
        ("--authorization-mode=AlwaysAllow",), ("--authorization-mode=Webhook",),
        "the kubelet asks the apiserver (SubjectAccessReview) whether the caller may use nodes/proxy etc.",
        "Ausserdem sollte Kubelet Authentifizierung und/oder Autorisierung aktiviert sein, um die "
        "kubelet-API zu sichern."),
    PathSetting(
        "kubelet-readonly", Component.KUBELET,
        ("--read-only-port={read_only_port}",), ("--read-only-port=0",),
        "the read-only HTTP port (no TLS, no authn, /pods for everyone) is closed",
        "Ausserdem sollte Kubelet Authentifizierung und/oder Autorisierung aktiviert sein, um die "
        "kubelet-API zu sichern."),
    PathSetting(
        "ssh-host-key", Component.SSH_TUNNEL,
        (), ("--ssh-known-hosts={known_hosts}",),
        "with SSH tunnels (--ssh-user/--ssh-keyfile; the docker lab's LAB_TUNNEL=ssh, minilab up has none): the "
        "apiserver checks each node's SSH host key against known_hosts instead of accepting whoever answers on "
        "port 22 (the historical behaviour)",
        "Dieser Tunnel stellt sicher, dass der Datenverkehr nicht außerhalb des Netzwerks sichtbar ist, in dem "
        "die Knoten ausgeführt werden."),
)
BY_NAME: Mapping[str, PathSetting] = {p.name: p for p in PATHS}


class ProfileError(ValueError):
    pass


def resolve(profile: str, overrides: Iterable[str] = ()) -> dict[str, Level]:
    """Path name -> level: the profile's column, then each ``PATH=LEVEL`` override (comma lists too)."""
    try:
        base = Level(profile)
    except ValueError:
        raise ProfileError(f"unknown profile {profile!r}; use insecure or hardened") from None
    levels = {p.name: base for p in PATHS}
    for item in (part for o in overrides for part in o.split(",") if part):
        name, _, value = item.partition("=")
        if name not in BY_NAME:
            raise ProfileError(f"unknown path {name!r} in --set; known: {', '.join(BY_NAME)}")
        try:
            levels[name] = Level(value)
        except ValueError:
            raise ProfileError(f"--set {item}: the value must be insecure or hardened") from None
    return levels


def flags_for(component: Component, levels: Mapping[str, Level], *, joined: bool = False,
              **values: str) -> list[str]:
    """The flags of ``component``'s rows at their levels, placeholders filled from ``values``."""
    out: list[str] = []
    for path in PATHS:
        if path.component is component:
            out += [f.format(**values) for f in path.flags(levels[path.name], joined=joined)]
    return out


def render(levels: Mapping[str, Level] | None = None) -> str:
    """The table for ``minilab profiles`` (and the docs): one line per path."""
    lines = []
    for p in PATHS:
        mark = f"  [{levels[p.name].value}]" if levels else ""
        lines.append(f"{p.name:22} {p.component.value:9} insecure: {' '.join(p.insecure) or '(unset)'}"
                     f"  |  hardened: {' '.join(p.hardened)}{mark}\n{'':23}{p.why}\n{'':23}seed: {p.seed}")
    return "\n".join(lines)
