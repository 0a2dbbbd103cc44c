"""The mutating half of the ServiceAccount admission plugin (plugin/pkg/admission/serviceaccount): the
token volume every pod gets unless it opts out. Pure: the pod and its ServiceAccount in, the pod changed.

Rules, in the plugin's order (PodStrategy calls :func:`mount_service_account_token` on create only):

1. Automount unless ``spec.automountServiceAccountToken`` is false on the pod or, when the pod does
   not say, on its ServiceAccount (shouldAutomount).
2. The volume is named ``kube-api-access-`` + 5 random characters (names.SimpleNameGenerator),
   unless the pod already has a volume whose name starts with ``kube-api-access-``: that one is used.
3. Every init container, then every container, that has no volumeMount at
   ``/var/run/secrets/kubernetes.io/serviceaccount`` gets one: ``{name, readOnly: true, mountPath}``.
   A container that mounts something else there keeps it (and gets no token).
4. The volume is added (appended to ``spec.volumes``) only if some container got the mount and the
   pod did not have it already. Its exact shape (TokenVolumeSource)::

       {"name": "kube-api-access-x7k2p",
        "projected": {"defaultMode": 420, "sources": [
          {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
          {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
          {"downwardAPI": {"items": [{"path": "namespace",
                                      "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}

   3607 s is ``WarnOnlyBoundTokenExpirationSeconds``: one hour plus 7 s, a value the apiserver
   recognises as "a kubelet-projected token".
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

VOLUME_PREFIX = "kube-api-access-"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
TOKEN_EXPIRATION_SECONDS = 3607  # serviceaccount.WarnOnlyBoundTokenExpirationSeconds
DEFAULT_MODE = 0o644  # 420, ProjectedVolumeSourceDefaultMode
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand: no vowels, no 0/1/3


def random_suffix() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(5))


def should_automount(pod: Obj, service_account: Obj | None) -> bool:
    """Rule 1."""
    flag = (pod.get("spec") or {}).get("automountServiceAccountToken")
    if isinstance(flag, bool):
        return flag
    flag = (service_account or {}).get("automountServiceAccountToken")
    return flag if isinstance(flag, bool) else True


def token_volume_source() -> Obj:
    """TokenVolumeSource(): the projected source of rule 4."""
    return {"defaultMode": DEFAULT_MODE, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}


def mount_service_account_token(pod: Obj, service_account: Obj | None,
                                suffix: Callable[[], str] = random_suffix) -> None:
    """Rules 1-4, in place."""
    spec = pod.get("spec")
    if not isinstance(spec, dict) or not should_automount(pod, service_account):
        return
    volumes: list[Any] = spec["volumes"] if isinstance(spec.get("volumes"), list) else []
    existing = next((v["name"] for v in volumes if isinstance(v, dict) and isinstance(v.get("name"), str)
                     and v["name"].startswith(VOLUME_PREFIX)), "")
    name = existing or VOLUME_PREFIX + suffix()
    needed = False
    for kind in ("initContainers", "containers"):
        for container in spec.get(kind) or ():
            if not isinstance(container, dict):
                continue
            mounts: list[Any] = container["volumeMounts"] if isinstance(container.get("volumeMounts"), list) else []
            if any(isinstance(m, dict) and m.get("mountPath") == MOUNT_PATH for m in mounts):
                continue
            container["volumeMounts"] = [*mounts, {"name": name, "readOnly": True, "mountPath": MOUNT_PATH}]
            needed = True
    if needed and not existing:
        spec["volumes"] = [*volumes, {"name": name, "projected": token_volume_source()}]


# --- TokenRequest lifetimes (pkg/registry/core/serviceaccount/storage/token.go) ----------------------

EXPIRATION_EXTENSION_SECONDS = 365 * 24 * 3600  # serviceaccount.ExpirationExtensionSeconds: one year
MIN_TOKEN_SECONDS, MAX_TOKEN_SECONDS = 600, 1 << 32  # validation.MinTokenAgeSec / MaxTokenAgeSec


@dataclass(frozen=True)
class Lifetime:
    """What a TokenRequest gets.

    1. ``expirationSeconds`` above ``--service-account-max-token-expiration`` is shortened to it, with
       the warning ``requested expiration of N seconds shortened to M seconds``.
    2. With ``--service-account-extend-token-expiration`` (default true), a Pod-bound request for
       exactly 3607 s whose audiences are all the apiserver's own gets a token valid for one year
       (``exp`` = iat + 1 y) carrying ``warnafter`` = iat + 3607; the answer still says 3607 s
       (``status.expirationTimestamp`` = now + 3607), which is what the kubelet refreshes by.
    """

    seconds: int  # spec.expirationSeconds of the answer, and of status.expirationTimestamp
    token_seconds: int  # exp - iat of the JWT
    warn_after_seconds: int = 0  # 0: no warnafter claim
    warning: str = ""


def token_lifetime(requested: int, max_seconds: int, extend: bool, pod_bound: bool,
                   audiences: Sequence[str], api_audiences: Sequence[str]) -> Lifetime:
    seconds, warning = requested, ""
    if max_seconds > 0 and requested > max_seconds:
        seconds = max_seconds
        warning = f"requested expiration of {requested} seconds shortened to {max_seconds} seconds"
    if extend and pod_bound and seconds == TOKEN_EXPIRATION_SECONDS and set(audiences) <= set(api_audiences):
        return Lifetime(seconds, EXPIRATION_EXTENSION_SECONDS, seconds, warning)
    return Lifetime(seconds, seconds, 0, warning)
