"""Scenario 9: the nodes' components reach the apiserver on its secure port and verify it.

The source page: "Die Master-Komponenten kommunizieren auch über den sicheren Port mit dem
Cluster-Apiserver." and "Der Standardbetriebsmodus für Verbindungen vom Cluster (Knoten und Pods, die
auf den Knoten ausgeführt werden) zum Master ist daher standardmäßig gesichert [...]". Every
node -> apiserver:443 connection crosses the router, where the attacker intercepts it
(lab/attacker/run.py, rule 3) from the moment the nodes start (they wait for it).

1. The kubelets and kube-proxy verify the apiserver against ca.crt from their kubeconfigs: each
   refused mitmproxy's certificate; the attacker logged the refusal ("tls-refused", by address),
   gave up on that address and passes its connections through (lab/attacker/giveup.py). The nodes
   are Ready, and the attacker read no request of theirs.
2. A probe pod on node2 shows the two certificates with ``openssl s_client``: from the node's own
   address (given up on: the real apiserver, ``issuer=CN = kubernetes``, verify OK), and through the
   ``kubernetes`` service from its pod address (still intercepted: ``issuer=... mitmproxy``, which
   does not chain to ca.crt - the certificate the kubelet would have had to accept).
3. The controller-manager sits on the apiserver's own network (no router between them); the client
   container, on the same network, checks the apiserver's certificate as it does.

Insecure mode: this path has no insecure Kubernetes default ("standardmäßig gesichert"), so both
profiles show the same. What a client with ``insecure-skip-tls-verify: true`` would suffer is
scenario 5 (a pod's client that does not verify).
"""

from __future__ import annotations

import secrets

from lab.attacker import loot
from lab.scenarios import podreport
from lab.scenarios.base import Context

NAME = "secure-port"
SUMMARY = "kubelets and kube-proxy verify the apiserver: interception fails, the attacker gives up, nodes stay Ready"
PATHS: tuple[str, ...] = ()  # no row: verified by default in both profiles
CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

PROBE = """\
import os, subprocess
lines = []
targets = (("from the node's address, direct", os.environ["APISERVER"]),
           ("from the pod address, through the kubernetes service",
            "%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])))
for label, target in targets:
    got = subprocess.run(["openssl", "s_client", "-connect", target, "-CAfile", "CA_PATH"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    lines.append("$ openssl s_client -connect %s -CAfile ca.crt   # %s" % (target, label))
    lines += ["  " + l for l in got.stdout.splitlines() if l.startswith(("subject=", "issuer=", "Verify return code"))]
lines.append("done")
""".replace("CA_PATH", CA)


def probe_manifest(name: str, node: str, apiserver: str) -> dict[str, object]:
    env = [podreport.POD_IP_ENV, {"name": "APISERVER", "value": apiserver}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"lab.scenario": NAME}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "automountServiceAccountToken": True,
                     "containers": [{"name": "probe", "image": "python", "env": env,
                                     "command": ["python3", "-c", PROBE + podreport.SERVER]}]}}


def run(ctx: Context) -> None:
    r = ctx.report
    ctx.need_attacker()
    top = ctx.top
    r.step("The nodes are Ready, though the attacker intercepts every node -> apiserver:443 connection")
    got = ctx.kubectl("get", "nodes", "-o", "wide")
    rows = [line.split()[:2] for line in got.stdout.splitlines()]
    ready = [n.name for n in top.nodes if [n.name, "Ready"] in rows]
    r.check(len(ready) == len(top.nodes), f"all nodes Ready: {', '.join(ready)}", f"Ready: {ready}")

    r.step("What the attacker got from the nodes' own addresses (its whole log since it started)")
    events = loot.read(ctx.loot_file)
    node_ips = {n.ip: n.name for n in top.nodes}
    apiserver = f"{top.apiserver_ip}:{top.apiserver_port}"

    def of(kind: str, ip: str) -> list[loot.Event]:
        return [e for e in events if e.get("kind") == kind and e.get("client") == ip and e.get("server") == apiserver]

    for ip, name in node_ips.items():
        for e in of("tls-refused", ip)[:2]:
            why = str(e.get("error")).split(". ")[0]
            r.say(f"tls-refused by {ip} ({name}: kubelet or kube-proxy): {why}", "      ")
        r.say(f"gave up on {ip}: {len(of('gave-up', ip))}; connections passed through since: "
              f"{len(of('passthrough', ip))}; requests read: {len(of('request', ip))}", "      ")
        r.check(bool(of("tls-refused", ip)) and bool(of("gave-up", ip)),
                f"{name}'s components refused mitmproxy's certificate; the attacker gave up on {ip}",
                f"no refusal from {ip} in the loot")
        r.check(not of("request", ip) and not of("bearer-token", ip), f"the attacker read no request of {name}'s",
                f"the attacker read {len(of('request', ip))} request(s) from {ip}")

    r.step("The controller-manager's path: the apiserver's own network, no router between (checked from the client)")
    shown = ctx.run(["sh", "-c", f"openssl s_client -connect {apiserver} -CAfile /etc/kubernetes/pki/ca.crt "
                     "</dev/null 2>/dev/null | grep -E '^(subject|issuer)=|Verify return code'"],
                    display=["openssl", "s_client", "-connect", apiserver, "-CAfile", "/etc/kubernetes/pki/ca.crt"])
    r.check("Verify return code: 0 (ok)" in shown.stdout, "verified against ca.crt: the real apiserver",
            f"openssl said {shown.stdout.strip()!r}")
    _probe(ctx, apiserver)


def _probe(ctx: Context, apiserver: str) -> None:
    r = ctx.report
    node = ctx.top.nodes[-1]
    pod = f"secure-port-{secrets.token_hex(3)}"
    r.step(f"A probe pod on {node.name}: which certificate does a connection from that node get?")
    with ctx.pod(probe_manifest(pod, node.name, apiserver), ready=True) as started:
        if not started:
            return
        report = podreport.read(ctx, pod)
    blocks = "\n".join(report).split("$ openssl")
    direct, service = (blocks[1], blocks[2]) if len(blocks) == 3 else ("", "")
    r.check("issuer=CN = kubernetes" in direct and "Verify return code: 0 (ok)" in direct,
            "direct, from the node's address: the real apiserver (the attacker passes it through)",
            f"openssl said {direct.strip()!r}")
    gave_up = [e for e in loot.read(ctx.loot_file) if e.get("kind") == "gave-up"
               and e.get("client") == ctx.top.pod_gateway(node.name)]
    if gave_up:
        r.check("Verify return code: 0 (ok)" in service, "through the service: the real apiserver too (the attacker "
                "gave up on this node's pods earlier)", f"openssl said {service.strip()!r}")
    else:
        r.check("mitmproxy" in service and "Verify return code: 0 (ok)" not in service,
                "through the service: mitmproxy's certificate, which does not chain to ca.crt",
                f"openssl said {service.strip()!r}")
    r.notice("The kubelet and kube-proxy hold the cluster CA in their kubeconfigs and verify the apiserver on every "
             "connection: the forged certificate above is what they were shown, and they hung up. An attacker who "
             "kept intercepting would only break the nodes and be noticed, so this one gave up and passes them "
             "through: the cluster works, and the attacker reads nothing. The controller-manager reaches the "
             "apiserver on its own network and verifies it the same way. No Kubernetes default is insecure here; "
             "a client that skips verification (insecure-skip-tls-verify: true, curl -k) is scenario 5.")
