"""The lab's pod network, as the real commands a node and the router run (lab/topology.py, "Pod
addresses", says why): printed before they run, so ``docker compose logs node1`` shows them.

On node ``node1`` (pod CIDR 10.244.1.0/24, before the kubelet starts)::

    ip route replace local 10.244.1.0/24 dev lo
    iptables -t nat -A POSTROUTING -m conntrack --ctstate DNAT --ctorigdst 10.96.0.0/12 \\
        -j SNAT --to-source 10.244.1.1

1. The whole block is local to the node: a pod process binds its own ``status.podIP`` (the kubelet
   hands out .2, .3, ...) and packets the router sends to it are delivered here.
2. Connections to a Service VIP (DNAT by ``minikubeproxy``'s KUBE-SERVICES rules) leave with the pod
   gateway address, not the node's: the node's own components (kubelet, kube-proxy) talk to the
   apiserver directly from 10.221.2.11, its pods through the ``kubernetes`` service from 10.244.1.1.
   In real Kubernetes every pod has its own network namespace and leaves with its pod IP; ours share
   the node's, so one address per node stands for its pods.

On the router, one route per node::

    ip route replace 10.244.1.0/24 via 10.221.2.11
"""

from __future__ import annotations

import shlex
import subprocess

from lab.topology import Topology


def node_commands(top: Topology, name: str) -> list[list[str]]:
    return [["ip", "route", "replace", "local", top.pod_cidr(name), "dev", "lo"],
            ["iptables", "-t", "nat", "-A", "POSTROUTING", "-m", "conntrack", "--ctstate", "DNAT",
             "--ctorigdst", top.service_cidr, "-j", "SNAT", "--to-source", top.pod_gateway(name)]]


def router_commands(top: Topology) -> list[list[str]]:
    return [["ip", "route", "replace", top.pod_cidr(n.name), "via", n.ip] for n in top.nodes]


def apply(commands: list[list[str]]) -> None:
    for argv in commands:
        print("+ " + shlex.join(argv), flush=True)
        subprocess.run(argv, check=True)
