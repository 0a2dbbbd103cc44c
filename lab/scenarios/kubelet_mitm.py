"""Scenario 1: a man in the middle of apiserver -> kubelet (``kubectl logs``, ``kubectl exec``).

The source page: "Standardmäßig überprüft der Apiserver das Serverzertifikat des Kubelet nicht, was
die Verbindung [...] angreifbar für Man-in-the-Middle-Angriffe macht". ``kubectl logs`` and
``kubectl exec`` go client -> apiserver (verified TLS) -> kubelet :10250 (the apiserver's own TLS
connection, across the untrusted network, through the router where the attacker sits). The exec step
runs where the apiserver serves ``pods/exec``; the attacker reads its WebSocket frames.

Outcomes, by the rows of the profile table (minilab/profiles.py):

1. ``apiserver-kubelet-ca=insecure`` and the kubelet lets the relayed request in
   (``kubelet-authn``/``kubelet-authz`` insecure): the apiserver accepts mitmproxy's certificate,
   ``kubectl logs``/``exec`` work, and the attacker printed the log lines and keystrokes it read.
2. ``apiserver-kubelet-ca=hardened`` (``--kubelet-certificate-authority``): the apiserver refuses
   mitmproxy's certificate, ``kubectl logs``/``exec`` fail with ``x509: certificate signed by unknown
   authority``, the attacker decrypted nothing.
3. ``apiserver-kubelet-ca=insecure`` but the kubelet requires authn/authz: the attacker is in the
   middle, yet mitmproxy cannot present the apiserver's client certificate, so the kubelet refuses
   the relayed request and no log line passes (scenario 2 explores this).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

from lab.attacker import decode, loot
from lab.scenarios.base import Context
from minilab.profiles import Level

NAME = "kubelet-mitm"
SUMMARY = "MITM of apiserver -> kubelet: kubectl logs read on the wire, or refused with --kubelet-certificate-authority"
PATHS = ("apiserver-kubelet-ca", "kubelet-serving-cert", "kubelet-authn", "kubelet-authz")
X509_UNKNOWN = "x509: certificate signed by unknown authority"
REFUSED = ("tls-refused", "tls-dropped")  # aborted in the handshake, or hung up right after it


def pod_manifest(name: str, node: str, secret: str) -> dict[str, object]:
    script = (f"echo 'starting payment worker'; echo 'db-password={secret}'; "
              "echo 'connected to db as app'; exec sleep 3600")
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"lab.scenario": NAME}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": "busybox", "command": ["/bin/sh", "-c", script]}]}}


def run(ctx: Context) -> None:
    r = ctx.report
    ctx.need_attacker()
    node = ctx.top.nodes[0]
    secret = secrets.token_hex(6)
    pod = f"mitm-demo-{secret[:6]}"

    r.step("The nodes sit behind the router; the apiserver dials each kubelet at its INTERNAL-IP:10250")
    ctx.kubectl("get", "nodes", "-o", "wide")

    r.step(f"Create a pod on {node.name} whose log holds a secret")
    with ctx.pod(pod_manifest(pod, node.name, secret)) as started:
        if not started:
            return
        since = time.time()
        r.step("Read its log through the apiserver (kubectl -> apiserver -> router/attacker -> kubelet)")
        logs = ctx.kubectl("logs", pod)
        tries = [Try("kubectl logs", logs.returncode, logs.stdout + logs.stderr, f"db-password={secret}")]
        if _serves_exec(ctx):
            r.step("Type a password into the pod with kubectl exec (stdin and stdout travel the same path)")
            typed = f"admin-password={secret}"
            got = ctx.kubectl("exec", "-i", pod, "--", "sh", "-c", "read line; echo \"login ok for ${line%%=*}\"",
                              stdin=typed + "\n")
            tries.append(Try("kubectl exec", got.returncode, got.stdout + got.stderr, "login ok for admin-password"))
        _expect(ctx, pod, secret, tries, since)


@dataclass(frozen=True)
class Try:
    """One command over the apiserver -> kubelet path: its exit code, output and the proof it worked."""

    what: str
    code: int
    output: str
    success_text: str

    @property
    def worked(self) -> bool:
        return self.code == 0 and self.success_text in self.output


def _serves_exec(ctx: Context) -> bool:
    """Whether this apiserver has pods/exec in discovery (the exec work of issue 4)."""
    got = ctx.kubectl("get", "--raw", "/api/v1", show=False)
    try:
        return any(res.get("name") == "pods/exec" for res in json.loads(got.stdout).get("resources", []))
    except ValueError:
        return False


def _expect(ctx: Context, pod: str, secret: str, tries: list[Try], since: float) -> None:
    r = ctx.report
    verifies = ctx.level("apiserver-kubelet-ca") is Level.HARDENED
    kubelet_open = ctx.level("kubelet-authn") is Level.INSECURE and ctx.level("kubelet-authz") is Level.INSECURE
    apiserver = ctx.top.apiserver_ip

    def refusals(events: list[loot.Event]) -> list[loot.Event]:
        return [e for e in events if e.get("kind") in REFUSED and e.get("client") == apiserver]

    def settled(events: list[loot.Event]) -> bool:
        return len(refusals(events)) >= len(tries) or len({e.get("kind") for e in events
                                                            if secret in " ".join(e.get("lines") or ())}) >= len(tries)

    events = loot.wait_for(settled, ctx.loot_file, since)
    stolen = decode.lines_with(events, secret)
    refused = refusals(events)
    requests = [e for e in events if e.get("kind") == "request" and e.get("client") == apiserver]

    r.step("What the attacker saw (also in `docker compose logs attacker`)")
    for e in events:
        channel = f"{e.get('channel')} ({e.get('direction')})" if e.get("channel") else ""
        detail = e.get("what") or e.get("path") or channel or e.get("error") or e.get("server") or ""
        r.say(f"{e.get('kind')}: {e.get('client', '')} -> {detail}", "      ")
        for line in (e.get("lines") or [])[:5]:
            r.say(f"| {line}", "        ")

    if verifies:
        for t in tries:
            r.check(t.code != 0 and X509_UNKNOWN in t.output, f"{t.what} fails with '{X509_UNKNOWN}'",
                    f"{t.what} exited {t.code} without the x509 error")
        r.check(not stolen and not requests, "the attacker decrypted nothing: not a single request",
                f"the attacker read {len(requests)} request(s), {len(stolen)} secret line(s)")
        r.check(bool(refused), "the attacker logged that the apiserver refused its certificate",
                "no refused TLS handshake from the apiserver in the attacker's loot")
        r.notice("--kubelet-certificate-authority makes the apiserver check the kubelet's serving certificate "
                 "against the cluster CA. mitmproxy's forged certificate is signed by mitmproxy's own CA, so the "
                 "apiserver hangs up before a single request is sent. The price: every kubelet now needs a "
                 "CA-signed serving certificate (row kubelet-serving-cert), or logs/exec fail for everyone.")
    elif kubelet_open:
        for t in tries:
            r.check(t.worked, f"{t.what} works", f"{t.what} exited {t.code}")
        r.check(any(f"db-password={secret}" in line for line in stolen),
                "the attacker read the same log lines on the wire",
                "the attacker's loot holds no log line with the secret")
        if len(tries) > 1:
            r.check(any(f"admin-password={secret}" in line for line in stolen),
                    "the attacker read the password typed into kubectl exec (a stdin frame)",
                    "the attacker's loot holds no exec frame with the password")
        r.notice("Nothing looked wrong to the user: kubectl worked. But the apiserver accepted whatever "
                 "certificate answered on 10.221.2.x:10250, here mitmproxy's, so the router read (and could "
                 f"have changed) every log line and every keystroke. Pod {pod}'s passwords are now the attacker's.")
    else:
        for t in tries:
            r.check(t.code != 0 and t.success_text not in t.output, f"{t.what} fails: the kubelet refuses the relay",
                    f"{t.what} exited {t.code}")
        r.check(not stolen, "no secret passed the attacker", f"the attacker read {stolen}")
        r.notice("The attacker is in the middle (the apiserver does not verify), but mitmproxy cannot present "
                 "the apiserver's client certificate, so the kubelet (authn/authz on) refuses the relayed "
                 "request. See scenario 2.")
