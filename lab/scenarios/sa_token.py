"""Scenario 5: a pod's service-account token, stolen on an unverified connection and replayed.

The source page: "Pods, die eine Verbindung zum Apiserver herstellen möchten, können dies auf sichere
Weise tun, indem sie ein Dienstkonto verwenden, sodass Kubernetes das öffentliche Stammzertifikat
und ein gültiges Trägertoken automatisch in den Pod einfügt, wenn er instanziert wird."

A pod on node1 talks to the apiserver as a client in a pod does: the ``kubernetes`` service VIP
10.96.0.1:443 (node1's ``minikubeproxy`` DNATs it to 10.221.1.10:443, across the router), with the
token of its service account ``app-*``, which a RoleBinding allows to list pods, nothing else. The
attacker intercepts pods' connections to the apiserver (lab/attacker/run.py, rule 3).

1. insecure (the pod's client is set up with ``verify_ssl = False``, the habit of ``curl -k``): the
   pod gets its answer, the attacker took the bearer token from the Authorization header and at
   once replayed it from its own address: it may list the pods of the namespace (the RoleBinding),
   and gets 403 for the namespace's secrets and for kube-system's pods.
2. hardened (``config.load_incluster_config()``: the mounted ``ca.crt`` is verified): the pod refuses
   mitmproxy's certificate (``CERTIFICATE_VERIFY_FAILED``), the attacker gives up on the pod's
   address (lab/attacker/giveup.py), the pod's retry reaches the real apiserver; nothing stolen.

No row of the profile table decides this (it is the pod's own client code): the lab's profile picks
which client the pod runs.
"""

from __future__ import annotations

import os
import secrets
import time

from lab.attacker import loot
from lab.scenarios import podreport
from lab.scenarios.base import Context

NAME = "sa-token"
SUMMARY = "a pod's service-account token stolen on an unverified connection and replayed; RBAC limits it"
PATHS: tuple[str, ...] = ()  # the pod's client decides, not a flag: LAB_PROFILE picks verify or not
TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"

APP = """\
import os, time
from kubernetes import client, config
lines = []
def note(text):
    lines.append(text)
    print(text, flush=True)
cfg = client.Configuration()
if os.environ["VERIFY"] == "1":
    config.load_incluster_config(client_configuration=cfg)  # the mounted token, and ca.crt verified
    note("client: config.load_incluster_config() -> %s, verifying ca.crt" % cfg.host)
else:
    cfg.host = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
    cfg.verify_ssl = False  # the mistake
    cfg.api_key = {"authorization": "Bearer " + open("TOKEN_PATH").read().strip()}
    note("client: %s with verify_ssl=False and the mounted token" % cfg.host)
cfg.retries = 0
api = client.CoreV1Api(client.ApiClient(cfg))
for attempt in (1, 2):
    try:
        names = [p.metadata.name for p in api.list_namespaced_pod(os.environ["NS"]).items]
        note("attempt %d: listed pods in %s: %s" % (attempt, os.environ["NS"], " ".join(names)))
    except Exception as e:
        note("attempt %d: %s" % (attempt, str(e).splitlines()[0][:400]))
    time.sleep(1)
note("done")
""".replace("TOKEN_PATH", TOKEN)


def rbac_commands(sa: str, role: str) -> list[list[str]]:
    return [["create", "serviceaccount", sa],
            ["create", "role", role, "--verb=get,list", "--resource=pods"],
            ["create", "rolebinding", role, f"--role={role}", f"--serviceaccount=default:{sa}"]]


def pod_manifest(name: str, node: str, sa: str, verify: bool) -> dict[str, object]:
    env = [podreport.POD_IP_ENV, {"name": "NS", "value": "default"},
           {"name": "VERIFY", "value": "1" if verify else "0"}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"lab.scenario": NAME}},
            "spec": {"nodeName": node, "serviceAccountName": sa, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": "python", "env": env,
                                     "command": ["/opt/venv/bin/python", "-c", APP + podreport.SERVER]}]}}


def run(ctx: Context) -> None:
    r = ctx.report
    ctx.need_attacker()
    verify = os.environ.get("LAB_PROFILE", "insecure") == "hardened"
    node = ctx.top.nodes[0]
    suffix = secrets.token_hex(3)
    sa, role, pod = f"app-{suffix}", f"pod-reader-{suffix}", f"sa-token-{suffix}"
    r.step(f"A service account {sa} that may list pods in default (a Role and RoleBinding), nothing else")
    for argv in rbac_commands(sa, role):
        ctx.kubectl(*argv)
    r.step(f"A pod on {node.name} as {sa}, talking to the apiserver through the kubernetes service (10.96.0.1:443), "
           + ("verifying the mounted ca.crt" if verify else "WITHOUT verifying the certificate (verify_ssl=False)"))
    since = time.time()
    try:
        with ctx.pod(pod_manifest(pod, node.name, sa, verify), ready=True) as started:
            if not started:
                return
            r.step("What the pod's client got (its report on its own port)")
            report = podreport.read(ctx, pod)
            _expect(ctx, sa, node.name, report, since, verify)
    finally:
        for kind, name in (("rolebinding", role), ("role", role), ("serviceaccount", sa)):
            ctx.kubectl("delete", kind, name, "--wait=false", show=False)


def _expect(ctx: Context, sa: str, node: str, report: list[str], since: float, verify: bool) -> None:
    r = ctx.report
    source = ctx.top.pod_gateway(node)
    subject = f"sub=system:serviceaccount:default:{sa}"
    attempts = [line for line in report if line.startswith("attempt ")]

    def tokens(events: list[loot.Event]) -> list[loot.Event]:
        return [e for e in events if e.get("kind") == "bearer-token" and subject in str(e.get("words"))]

    def replays(events: list[loot.Event]) -> list[loot.Event]:
        marks = {e.get("fingerprint") for e in tokens(events)}
        return [e for e in events if e.get("kind") == "replay" and e.get("token") in marks]

    def from_pod(events: list[loot.Event], *kinds: str) -> list[loot.Event]:
        return [e for e in events if e.get("kind") in kinds and e.get("client") == source]

    if verify:
        events = loot.wait_for(lambda ev: bool(from_pod(ev, "tls-refused", "passthrough")), ctx.loot_file, since)
    else:
        events = loot.wait_for(lambda ev: len(replays(ev)) >= 3, ctx.loot_file, since, timeout=15)
    r.step(f"What the attacker got from {source} (node {node}'s pods; also in `docker compose logs attacker`)")
    for e in events:
        if e.get("kind") == "bearer-token" and e in tokens(events):
            r.say(f"STOLEN bearer token: {e.get('words')}", "      ")
        elif e.get("kind") == "replay" and e in replays(events):
            r.say(f"REPLAYED from the attacker's address: GET {e.get('path')} -> {e.get('result')}", "      ")
        elif e in from_pod(events, "tls-refused", "gave-up", "passthrough"):
            r.say(f"{e.get('kind')}: {e.get('client')} -> {e.get('server')} {e.get('error', '')}".rstrip(), "      ")

    if not verify:
        r.check(len(attempts) == 2 and all("listed pods" in a for a in attempts),
                "the pod listed its namespace's pods: nothing looked wrong", f"the pod reported {attempts}")
        r.check(bool(tokens(events)), f"the attacker read the pod's token on the wire ({subject})",
                "no bearer token of the pod's service account in the loot")
        got = {str(e.get("path")): int(e.get("status", 0)) for e in replays(events)}
        want = {"/api/v1/namespaces/default/pods": 200, "/api/v1/namespaces/default/secrets": 403,
                "/api/v1/namespaces/kube-system/pods": 403}
        r.check(got == want, "the replay: pods in default 200 (the RoleBinding), secrets 403, kube-system pods 403",
                f"replay answers {got}")
        r.notice("The pod's client skipped certificate verification, so the router answered with mitmproxy's "
                 "certificate and read the Authorization header: the pod's service-account token. The attacker "
                 "replayed it from its own address and got exactly what the RoleBinding gives the service "
                 "account (its namespace's pods), and 403 for everything else: RBAC limited the damage. "
                 "A bound token also expires and dies with its pod, but until then it is the attacker's.")
        return
    refused = from_pod(events, "tls-refused")
    r.check(not tokens(events), "the attacker read no token", f"the attacker stole {len(tokens(events))} token(s)")
    r.check(bool(refused) or bool(from_pod(events, "passthrough")),
            "the pod's client refused mitmproxy's certificate, or the attacker had already given up on it",
            "neither a refusal nor a passthrough from the pod's address in the loot")
    if refused:
        r.check(bool(attempts) and "CERTIFICATE_VERIFY_FAILED" in attempts[0],
                "attempt 1 failed: CERTIFICATE_VERIFY_FAILED (the pod verified ca.crt)", f"the pod reported {attempts}")
    r.check(bool(attempts) and "listed pods" in attempts[-1],
            "the last attempt reached the real apiserver (the attacker passes the pod through now)",
            f"the pod reported {attempts}")
    r.notice("load_incluster_config() verifies the apiserver against the ca.crt that Kubernetes mounted into the "
             "pod with the token. mitmproxy's certificate does not chain to it, so the client aborted the "
             "handshake before sending a single header: no token left the pod. The attacker gave up on the "
             "pod's address; the retry went to the real apiserver.")
