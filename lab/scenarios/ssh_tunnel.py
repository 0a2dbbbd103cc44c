"""Scenario 7: the historical SSH tunnels (``LAB_TUNNEL=ssh``): only SSH on the wire, but whose SSH?

The source page: "In dieser Konfiguration initiiert der Apiserver einen SSH-Tunnel zu jedem Node im Cluster
(Verbindung mit dem SSH-Server, der Port 22 läuft), und leitet den gesamten Datenverkehr für ein kubelet,
einen Node, einen Pod oder einen Dienst durch den Tunnel. Dieser Tunnel stellt sicher, dass der
Datenverkehr nicht außerhalb des Netzwerks sichtbar ist, in dem die Knoten ausgeführt werden."

The lab (lab/env/ssh.env, ssh-hardened.env): the apiserver runs ``--ssh-user kube-tunnel --ssh-keyfile ...``,
every node the real OpenSSH sshd (forwarding only). The attacker on the router (a) waits with mitmproxy on the
kubelet ports 10250/10255 and (b) redirects the apiserver's port-22 connections to its own SSH server
(lab/attacker/sshimpersonate.py), which presents a host key of its own.

Outcomes, by row ``ssh-host-key`` (minilab/profiles.py):

1. both: mitmproxy sees not one apiserver connection to a kubelet port: everything travels inside SSH.
2. insecure (no host-key check, the historical behaviour): the apiserver logs in to the impersonator, whose
   channels it takes for node1's; ``kubectl logs`` works, the impersonator relays it (TLS inside: unreadable)
   and reads the plain-HTTP node proxy request to the read-only port in clear, the pod's secret included.
3. hardened (``--ssh-known-hosts`` with the nodes' real host keys from the pki job): the apiserver refuses
   the impersonator during the key exchange; ``kubectl logs`` fails naming the host-key mismatch; the
   impersonator never gets a login, so no channel, no byte.
"""

from __future__ import annotations

import os
import secrets
import time

from lab.attacker import loot
from lab.scenarios.base import Context, NotSetUp
from minilab.profiles import Level

NAME = "ssh-tunnel"
SUMMARY = "SSH tunnels: only SSH on the wire; node impersonation without host-key checking, refused with known_hosts"
PATHS = ("ssh-host-key",)
MISMATCH = "host key mismatch"
KUBELET_EVENTS = ("tls-handshake", "tls-refused", "tls-dropped", "request")


def pod_manifest(name: str, node: str, secret: str) -> dict[str, object]:
    script = f"echo 'reporting worker up'; echo 'api-key={secret}'; exec sleep 3600"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"lab.scenario": NAME}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": "busybox", "command": ["/bin/sh", "-c", script],
                                     "env": [{"name": "API_KEY", "value": secret}]}]}}


def run(ctx: Context) -> None:
    r = ctx.report
    if os.environ.get("LAB_TUNNEL", "direct") != "ssh":
        raise NotSetUp("this scenario needs the SSH tunnels, but LAB_TUNNEL is "
                       f"{os.environ.get('LAB_TUNNEL', 'direct')!r}; start the lab with "
                       "`docker compose --env-file lab/env/ssh.env up -d` (or lab/env/ssh-hardened.env)")
    ctx.need_attacker()
    checks = ctx.level("ssh-host-key") is Level.HARDENED
    node = ctx.top.nodes[0]
    secret = secrets.token_hex(6)
    pod = f"ssh-demo-{secret[:6]}"
    apiserver = ctx.top.apiserver_ip

    r.step("The apiserver reaches the nodes through SSH tunnels (its flags: docker compose logs apiserver | head)")
    r.say("+ miniapi ... --ssh-user kube-tunnel --ssh-keyfile /etc/kubernetes/ssh/tunnel.key"
          + (" --ssh-known-hosts /var/lib/miniapi/known_hosts" if checks else ""))
    ctx.kubectl("get", "nodes", "-o", "wide")
    r.step("The nodes' real SSH host keys, recorded by the pki job (what --ssh-known-hosts is filled with)")
    ctx.run(["ssh-keygen", "-l", "-f", "/etc/kubernetes/ssh/known_hosts"])
    impostor = [e for e in loot.read(ctx.loot_file) if e.get("kind") == "ssh-impersonator"]
    if impostor:
        r.say(f"the attacker's SSH server presents {impostor[-1].get('key')} (from its log)")

    r.step(f"Create a pod on {node.name} with a secret in its log and its environment")
    with ctx.pod(pod_manifest(pod, node.name, secret)) as started:
        if not started:
            return
        since = time.time()
        r.step("Read its log: apiserver -> SSH tunnel -> kubelet :10250 (HTTPS inside SSH)")
        logs = ctx.kubectl("logs", pod)
        r.step(f"The apiserver's node proxy to {node.name}'s read-only port: plain HTTP, inside the tunnel")
        proxied = ctx.kubectl("get", "--raw", f"/api/v1/nodes/{node.name}:10255/proxy/pods")
        _expect(ctx, checks, apiserver, node.ip, secret, logs.returncode, logs.stdout + logs.stderr,
                proxied.returncode, proxied.stdout + proxied.stderr, since)


def _expect(ctx: Context, checks: bool, apiserver: str, node_ip: str, secret: str, logs_code: int, logs_out: str,
            proxy_code: int, proxy_out: str, since: float) -> None:
    r = ctx.report

    def settled(events: list[loot.Event]) -> bool:
        return checks or any(secret in " ".join(e.get("lines") or ()) for e in events if e.get("kind") == "ssh-http")

    recent = loot.wait_for(settled, ctx.loot_file, since)
    everything = loot.read(ctx.loot_file)
    from_api = [e for e in everything if e.get("client") == apiserver]
    kubelet_ports = [e for e in recent if e.get("kind") in KUBELET_EVENTS and e.get("client") == apiserver]
    ssh_connects = [e for e in from_api if e.get("kind") == "ssh-connect"]
    logins = [e for e in from_api if e.get("kind") == "ssh-login"]
    refused = [e for e in from_api if e.get("kind") == "ssh-refused"]
    channels = [e for e in recent if e.get("kind") == "ssh-channel" and e.get("client") == apiserver]
    stolen = [line for e in recent if e.get("kind") == "ssh-http" for line in e.get("lines") or () if secret in line]

    r.step("What the attacker saw (also in `docker compose logs attacker`)")
    for e in [*ssh_connects[-2:], *logins[-2:], *refused[-2:], *recent]:
        if e.get("kind", "").startswith("ssh-") or e in kubelet_ports:
            detail = e.get("target") or e.get("server") or ""
            extra = e.get("user") or e.get("error") or e.get("protocol") or e.get("direction") or ""
            r.say(f"{e.get('kind')}: {e.get('client', '')} -> {detail} {extra}".rstrip(), "      ")
            for line in (e.get("lines") or [])[:4]:
                r.say(f"| {line[:200]}", "        ")

    r.check(not kubelet_ports, "on the wire, not one apiserver connection to a kubelet port: only SSH (port 22)",
            f"mitmproxy saw {len(kubelet_ports)} apiserver connection(s) to a kubelet port outside SSH")
    r.check(bool(ssh_connects), "the apiserver's SSH connections to :22 crossed the router (the attacker has them)",
            "the attacker saw no SSH connection from the apiserver")
    if checks:
        for what, code, out in (("kubectl logs", logs_code, logs_out), ("the node proxy", proxy_code, proxy_out)):
            r.check(code != 0 and MISMATCH in out, f"{what} fails, naming the '{MISMATCH}'",
                    f"{what} exited {code} without '{MISMATCH}'")
        r.check(bool(refused) and not logins, "the apiserver hung up on the impersonator before logging in to it",
                f"{len(refused)} refusal(s), {len(logins)} login(s) at the impersonator")
        r.check(not channels and not stolen, "the impersonator got no tunnel channel and read nothing",
                f"the impersonator got {len(channels)} channel(s), read {len(stolen)} secret line(s)")
        r.notice("--ssh-known-hosts holds each node's real host key (the pki job recorded them). The attacker's "
                 "SSH server answered on port 22 with a key of its own, so the apiserver refused it during the key "
                 "exchange, before sending its key or opening a single channel: kubectl fails loudly instead of "
                 "talking to an impostor. (Unknown nodes would be trusted on first use, like ssh's "
                 "StrictHostKeyChecking=accept-new: fill known_hosts before the attacker can answer.)")
        return
    r.check(logs_code == 0 and f"api-key={secret}" in logs_out, "kubectl logs works (through the impersonator)",
            f"kubectl logs exited {logs_code}")
    r.check(proxy_code == 0 and secret in proxy_out, "the node proxy request works (through the impersonator)",
            f"the node proxy request exited {proxy_code}")
    r.check(any(e.get("user") == "kube-tunnel" for e in logins),
            "the apiserver logged in to the attacker's SSH server as kube-tunnel: it took it for the node",
            "no login as kube-tunnel at the impersonator")
    r.check(any(e.get("target", "").startswith(f"{node_ip}:") for e in channels),
            f"the impersonator was asked for tunnel channels to {node_ip} and relayed them",
            f"no tunnel channel to {node_ip} at the impersonator")
    r.check(bool(stolen), "the impersonator read the pod's secret in the plain-HTTP node proxy response",
            "the impersonator's loot holds no line with the secret")
    r.notice("SSH encrypted the wire: mitmproxy on the kubelet ports saw nothing. But the apiserver never checked "
             "WHOSE SSH server answered on port 22, so the attacker's own server got every tunnel: it relayed the "
             "kubelet's HTTPS (unreadable, and unverified by this apiserver too) and read the node proxy's plain "
             "HTTP, the pod's environment included. The apiserver only logged a warning per connection: "
             "'ssh host key NOT verified' (docker compose logs apiserver).")
