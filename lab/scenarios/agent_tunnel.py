"""Scenario 8: the agent tunnel (Konnectivity) that replaced the SSH tunnels: nodes accept nothing inbound.

The source page: "SSH-Tunnel sind derzeit nicht mehr unterstützt. [...] Ein Ersatz für diesen
Kommunikationskanal wird entwickelt." The replacement is the Konnectivity service: an agent on every node
dials OUT to the Konnectivity server beside the apiserver (mutual TLS), and the apiserver sends every
connection to a node, pod or service through it (``--egress-selector-config-file``).

Columns of this scenario (``LAB_TUNNEL``, lab/tunnel.py; the profile must agree, see below):

1. insecure = ``LAB_TUNNEL=direct`` with the insecure profile (lab/env/insecure.env): the apiserver dials the
   kubelets itself; a node answers connections from the control-plane network (``curl`` from the client reaches
   :10250) and the attacker on the router reads ``kubectl logs`` (scenario 1).
2. hardened = ``LAB_TUNNEL=konnectivity`` (lab/env/konnectivity.env): the nodes drop every NEW connection from
   the control-plane network (iptables INPUT), so ``curl https://NODE:10250`` from the client times out, while
   ``kubectl logs``/``exec`` work through the agents' tunnel. The attacker redirects the agents' connections
   to mitmproxy: each agent refuses mitmproxy's certificate (it checks the server against the tunnel CA), the
   attacker gives up and passes them through (lab/attacker/giveup.py), and reads nothing.

The scenario decides by ``LAB_TUNNEL``: a konnectivity lab with ``LAB_PROFILE=insecure`` is judged as the
hardened column too (the tunnel alone keeps the attacker out, even with kubelet certificates unverified).
"""

from __future__ import annotations

import os
import secrets
import time

from lab.attacker import decode, loot
from lab.scenarios.base import Context, NotSetUp
from lab.scenarios.kubelet_mitm import Try, _serves_exec, pod_manifest
from minilab.profiles import Level

NAME = "agent-tunnel"
SUMMARY = "Konnectivity agents dial out: nodes accept no inbound connection, interception fails on mutual TLS"
PATHS = ("apiserver-kubelet-ca", "kubelet-authn", "kubelet-authz")
AGENT_PORT = 8132


def run(ctx: Context) -> None:
    r = ctx.report
    tunnel = os.environ.get("LAB_TUNNEL", "direct")
    if tunnel == "ssh" or (tunnel == "direct" and ctx.level("apiserver-kubelet-ca") is Level.HARDENED):
        raise NotSetUp(f"this scenario compares the direct connection of the insecure profile with the agent tunnel, "
                       f"but this lab runs LAB_TUNNEL={tunnel} with LAB_PROFILE={os.environ.get('LAB_PROFILE')}; "
                       "start it with `docker compose --env-file lab/env/konnectivity.env up -d` (agent tunnel) or "
                       "lab/env/insecure.env (direct)")
    ctx.need_attacker()
    agents = tunnel == "konnectivity"
    node = ctx.top.nodes[0]
    secret = secrets.token_hex(6)
    pod = f"agent-demo-{secret[:6]}"

    r.step("How the apiserver reaches the nodes in this lab")
    if agents:
        r.say("+ miniapi ... --egress-selector-config-file /var/lib/miniapi/egress-selector-configuration.yaml\n"
              "+ python -m miniapi.konnectivity server --uds-name /run/konnectivity/konnectivity-server.socket "
              f"--agent-port {AGENT_PORT} ...   (beside the apiserver)\n"
              f"+ python -m miniapi.konnectivity agent --proxy-server-host {ctx.top.apiserver_ip} --proxy-server-port "
              f"{AGENT_PORT} --ca-cert ... --agent-cert ...   (on every node: it dials OUT)\n"
              f"+ iptables -A INPUT -s {ctx.top.control_cidr} -m conntrack --ctstate NEW -j DROP   (on every node)")
    else:
        r.say("direct: the apiserver dials each kubelet at INTERNAL-IP:10250 itself, across the router")
    ctx.kubectl("get", "nodes", "-o", "wide")

    r.step(f"From the control-plane network, open a connection to {node.name}'s kubelet (the learner's curl)")
    curl = ctx.run(["curl", "-sk", "--max-time", "5", "-o", "/dev/null", "-w", "HTTP %{http_code}\n",
                    f"https://{node.ip}:10250/healthz"], timeout=20)
    if agents:
        r.check(curl.returncode != 0 and "HTTP 000" in curl.stdout,
                f"{node.name} takes no inbound connection from the control plane (curl gives up)",
                f"curl reached {node.name}:10250 ({curl.stdout.strip()}, exit {curl.returncode})")
    else:
        r.check(curl.returncode == 0 and "HTTP 000" not in curl.stdout,
                f"{node.name} answers a connection from the control plane ({curl.stdout.strip()})",
                f"curl could not reach {node.name}:10250 (exit {curl.returncode})")

    r.step(f"Create a pod on {node.name} whose log holds a secret")
    with ctx.pod(pod_manifest(pod, node.name, secret)) as started:
        if not started:
            return
        since = time.time()
        r.step("Read its log and type into it: kubectl -> apiserver -> " +
               ("Konnectivity server <- agent (dialled out) -> kubelet" if agents else "router/attacker -> kubelet"))
        got = ctx.kubectl("logs", pod)
        tries = [Try("kubectl logs", got.returncode, got.stdout + got.stderr, f"db-password={secret}")]
        if _serves_exec(ctx):
            typed = f"admin-password={secret}"
            ex = ctx.kubectl("exec", "-i", pod, "--", "sh", "-c", "read line; echo \"login ok for ${line%%=*}\"",
                             stdin=typed + "\n")
            tries.append(Try("kubectl exec", ex.returncode, ex.stdout + ex.stderr, "login ok for admin-password"))
        for t in tries:
            r.check(t.worked, f"{t.what} works", f"{t.what} exited {t.code}")
        _loot(ctx, agents, secret, since, len(tries))


def _loot(ctx: Context, agents: bool, secret: str, since: float, tries: int) -> None:
    r = ctx.report
    node_ips = {n.ip for n in ctx.top.all_nodes}

    def settled(events: list[loot.Event]) -> bool:
        return agents or len(decode.lines_with(events, secret)) >= tries

    recent = loot.wait_for(settled, ctx.loot_file, since)
    stolen = decode.lines_with(recent, secret)
    everything = loot.read(ctx.loot_file)
    refused = [e for e in everything if e.get("kind") in ("tls-refused", "tls-dropped") and e.get("client") in node_ips
               and str(e.get("server", "")).endswith(f":{AGENT_PORT}")]
    gave_up = [e for e in everything if e.get("kind") == "gave-up"]
    to_kubelets = [e for e in recent if e.get("kind") in ("tls-handshake", "request")
                   and e.get("client") == ctx.top.apiserver_ip]

    r.step("What the attacker saw (also in `docker compose logs attacker`)")
    for e in [*refused, *gave_up, *recent]:
        if e.get("kind") in ("started",):
            continue
        detail = e.get("what") or e.get("path") or e.get("server") or ""
        why = f" ({str(e['error'])[:70]}...)" if e.get("error") else ""
        r.say(f"{e.get('kind')}: {e.get('client', '')} -> {detail}{why}", "      ")
        for line in (e.get("lines") or [])[:3]:
            r.say(f"| {line}", "        ")
    if agents:
        r.check(len({e.get("client") for e in refused}) >= len(node_ips),
                "every node's agent refused mitmproxy's certificate for the Konnectivity server (mutual TLS)",
                f"refusals from {sorted({str(e.get('client')) for e in refused})}, not from every node")
        r.check(not stolen and not to_kubelets, "the attacker read nothing: no request, no log line, no keystroke",
                f"the attacker read {len(to_kubelets)} request(s)/handshake(s), {len(stolen)} secret line(s)")
        r.notice("The nodes accept no connection from the control plane at all; the agents dial out, and check "
                 "the server's certificate against the tunnel CA while the server checks theirs. mitmproxy's "
                 "forged certificate was refused, so all the attacker can do is drop the agents' traffic (a denial "
                 "of service) or pass it through unread, as it did here. kubectl logs/exec still work: they travel "
                 "inside the agents' TLS connections.")
    else:
        r.check(any(f"db-password={secret}" in line for line in stolen),
                "the attacker read the log line with the secret on the wire (scenario 1)",
                "the attacker's loot holds no log line with the secret")
        r.notice("Direct mode: the apiserver dials the kubelets across the untrusted network, the nodes accept "
                 "connections from anywhere, and without --kubelet-certificate-authority the attacker in the "
                 "middle reads everything. Compare with lab/env/konnectivity.env.")
