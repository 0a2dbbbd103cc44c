"""Scenario 6: a node joins by TLS bootstrapping, then scenario 1's man in the middle is tried against it.

The source page: "Nodes sollten mit dem öffentlichen Stammzertifikat für den Cluster konfigurirert werden,
sodass sie eine sichere Verbindung zum Apiserver mit gültigen Client-Anmeldeinformationen herstellen können."
and "Lesen Sie über kubelet TLS bootstrapping zur automatisierten Bereitstellung von kubelet-Client-Zertifikaten."

node3 (``LAB_JOIN_NODES``) gets from the pki job nothing but the cluster CA and ``bootstrap-kubelet.conf``
(a bootstrap token; its Secret ``kube-system/bootstrap-token-<id>`` is made by the one-shot
``bootstrap-token`` service, as ``kubeadm token create`` does). Its kubelet asks for a client certificate
with a ``node-csr-*`` CSR, which the controller-manager's csrapproving controller approves and its signer
signs: no human involved.

Outcomes, by the rows of the profile table:

1. ``kubelet-serving-cert=insecure`` (no ``--rotate-server-certificates``): node3 serves a self-signed
   certificate; ``apiserver-kubelet-ca=insecure`` does not check it, so the attacker reads ``kubectl logs``
   of a pod on node3, exactly as in scenario 1.
2. hardened: node3 asks for a serving certificate (``kubernetes.io/kubelet-serving`` CSR) that nobody approves
   automatically (a node could claim any IP); the learner approves it (``kubectl certificate approve``), node3
   then serves a CA-signed certificate (openssl verifies it against ca.crt), and the apiserver, which checks
   with ``--kubelet-certificate-authority``, refuses mitmproxy's certificate: ``kubectl logs`` fails with the x509
   error and the attacker reads nothing.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from lab.scenarios.base import Context, NotSetUp
from lab.scenarios.kubelet_mitm import Try, _expect, _serves_exec, pod_manifest
from minilab.profiles import Level

NAME = "bootstrap"
SUMMARY = "TLS bootstrapping of node3: CSRs, approval of its serving cert, then scenario 1 against node3"
PATHS = ("kubelet-serving-cert", "apiserver-kubelet-ca", "kubelet-authn", "kubelet-authz")
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"


def _csrs(ctx: Context) -> list[dict[str, Any]]:
    got = ctx.kubectl("get", "csr", "-o", "json", show=False)
    try:
        return list(json.loads(got.stdout).get("items") or [])
    except ValueError:
        return []


def _state(csr: dict[str, Any]) -> str:
    conditions = {c.get("type") for c in (csr.get("status") or {}).get("conditions") or ()}
    if "Denied" in conditions or "Failed" in conditions:
        return "Denied"
    if "Approved" in conditions:
        return "Issued" if (csr.get("status") or {}).get("certificate") else "Approved"
    return "Pending"


def _served_cert(ctx: Context, ip: str, show: bool = True) -> str:
    """Subject and issuer of the certificate the kubelet on ``ip`` serves (the learner's openssl)."""
    cmd = (f"openssl s_client -connect {ip}:10250 </dev/null 2>/dev/null | openssl x509 -noout -subject -issuer "
           "-ext subjectAltName")
    return ctx.run(["sh", "-c", cmd], show=show, timeout=20).stdout


def run(ctx: Context) -> None:
    r = ctx.report
    if not ctx.top.joined:
        raise NotSetUp("this scenario needs a node that joins by bootstrap token (LAB_JOIN_NODES, node3 in "
                       "docker-compose.yml); start the lab with `docker compose --env-file lab/env/insecure.env up -d`")
    ctx.need_attacker()
    node = ctx.top.joined[0]
    hardened = ctx.level("kubelet-serving-cert") is Level.HARDENED
    token_id = open("/etc/kubernetes/bootstrap-token").read().split(".")[0]

    r.step(f"{node.name} got only the cluster CA and a bootstrap token (bootstrap-kubelet.conf): its Secret")
    got = ctx.kubectl("-n", "kube-system", "get", "secret", f"bootstrap-token-{token_id}",
                      "-o", "go-template={{.type}} expiration={{.data.expiration | base64decode}} "
                      "groups={{index .data \"auth-extra-groups\" | base64decode}}")
    r.check(got.returncode == 0 and "bootstrap.kubernetes.io/token" in got.stdout,
            f"kube-system/bootstrap-token-{token_id} exists (type bootstrap.kubernetes.io/token)",
            f"no bootstrap token Secret bootstrap-token-{token_id}")
    ready = ctx.kubectl("wait", "--for=condition=Ready", f"node/{node.name}", "--timeout=60s")
    if not r.check(ready.returncode == 0, f"{node.name} joined and is Ready", f"{node.name} is not Ready"):
        return
    ctx.kubectl("get", "nodes", "-o", "wide")

    r.step("The CSRs: node3's client certificate was asked for with the token and approved by the controller-manager")
    ctx.kubectl("get", "csr")
    csrs = _csrs(ctx)
    client = [c for c in csrs if c["spec"].get("signerName") == CLIENT_SIGNER
              and c["spec"].get("username") == f"system:bootstrap:{token_id}"]
    r.check(any(c["metadata"]["name"].startswith("node-csr-") and _state(c) == "Issued" for c in client),
            f"a node-csr-* CSR by system:bootstrap:{token_id} for {CLIENT_SIGNER}: Approved,Issued (auto-approved)",
            f"no issued node-csr-* CSR by system:bootstrap:{token_id}: {[(_state(c)) for c in client]}")
    serving = [c for c in csrs if c["spec"].get("signerName") == SERVING_SIGNER
               and c["spec"].get("username") == f"system:node:{node.name}"]

    r.step(f"The certificate {node.name}'s kubelet serves on :10250 (subject, issuer)")
    before = _served_cert(ctx, node.ip)
    if not hardened:
        r.check(not serving, f"{node.name} asked for no serving certificate (no --rotate-server-certificates)",
                f"{node.name} has {len(serving)} kubelet-serving CSR(s)")
        r.check(f"{node.name}-ca@" in before, f"{node.name} serves a self-signed certificate "
                f"(issuer {node.name}-ca@...)", f"unexpected serving certificate: {before.strip()}")
        r.notice("Without --rotate-server-certificates a bootstrapped kubelet makes its own serving certificate. "
                 "Nothing can verify it, so the apiserver does not try (no --kubelet-certificate-authority).")
    else:
        pending = [c for c in serving if _state(c) == "Pending"]
        earlier = [c for c in serving if _state(c) == "Issued"]
        if earlier and not pending:
            r.say(f"(approved in an earlier run of this scenario: {earlier[0]['metadata']['name']})")
        elif not r.check(bool(pending), f"{node.name}'s {SERVING_SIGNER} CSR is Pending (nobody approves it "
                         "automatically)", f"no Pending kubelet-serving CSR of {node.name}: "
                         f"{[_state(c) for c in serving]}"):
            return
        else:
            name = pending[0]["metadata"]["name"]
            r.step(f"You approve it: check the CSR asks only for {node.name}'s own names, then")
            ctx.kubectl("get", "csr", name, "-o", "jsonpath={.spec.username} {.spec.usages}")
            approved = ctx.kubectl("certificate", "approve", name)
            r.check(approved.returncode == 0, f"certificatesigningrequest {name} approved",
                    f"kubectl certificate approve failed: {approved.stderr.strip()}")
        ca_subject = ctx.run(["openssl", "x509", "-in", "/etc/kubernetes/pki/ca.crt", "-noout", "-subject"],
                             show=False).stdout.strip().removeprefix("subject=").strip()
        deadline, after = time.monotonic() + 30, ""
        while time.monotonic() < deadline:
            after = _served_cert(ctx, node.ip, show=False)
            if f"issuer={ca_subject}" in after.replace("issuer= ", "issuer="):
                break
            time.sleep(1)
        r.step(f"{node.name} serves the CA-signed certificate now")
        _served_cert(ctx, node.ip)
        verify = ctx.run(["sh", "-c", f"openssl s_client -connect {node.ip}:10250 -CAfile /etc/kubernetes/pki/ca.crt "
                          "-verify_return_error </dev/null 2>&1 | grep -E 'Verify return code|verify error'"],
                         timeout=20)
        r.check("Verify return code: 0 (ok)" in verify.stdout,
                f"openssl verifies {node.name}'s serving certificate against the cluster CA",
                f"{node.name}'s serving certificate does not verify against ca.crt")
        r.notice("The kubelet-serving signer is never auto-approved: a node could put any name or IP into its CSR. "
                 "An admin (or a controller that checks the node's addresses) must approve it. Only then can the "
                 "apiserver verify the kubelet (--kubelet-certificate-authority) without failing for this node.")

    secret = secrets.token_hex(6)
    pod = f"join-demo-{secret[:6]}"
    r.step(f"Scenario 1 against {node.name}: a pod whose log holds a secret, read through the apiserver")
    with ctx.pod(pod_manifest(pod, node.name, secret), f"pod {pod} is Running on {node.name}") as started:
        if not started:
            return
        since = time.time()
        logs = ctx.kubectl("logs", pod)
        tries = [Try("kubectl logs", logs.returncode, logs.stdout + logs.stderr, f"db-password={secret}")]
        if _serves_exec(ctx):
            got = ctx.kubectl("exec", "-i", pod, "--", "sh", "-c", "read line; echo \"login ok for ${line%%=*}\"",
                              stdin=f"admin-password={secret}\n")
            tries.append(Try("kubectl exec", got.returncode, got.stdout + got.stderr, "login ok for admin-password"))
        _expect(ctx, pod, secret, tries, since)
