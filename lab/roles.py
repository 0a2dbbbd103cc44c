"""``lab role NAME``: what each container of the compose lab runs, as the real command line.

Every role prints the command it execs (``+ miniapi --secure-port 443 ...``), so
``docker compose logs apiserver`` shows the flags a learner would type by hand. The per-path
switch is minilab's table (minilab/profiles.py): ``LAB_PROFILE=insecure|hardened`` picks a column,
``LAB_SET=path=level,...`` flips single rows, exactly as ``minilab up --profile ... --set ...``.

1. ``pki``                one-shot: ``minipki init`` into the ``pki`` volume (the apiserver's in-lab
                          address and names as SANs, the nodes' IPs in their serving certs), then
                          copies each node's own files (kubelet.conf, client cert, ca.crt, serving
                          cert) into that node's volume; a node never sees the CA key.
2. ``apiserver``          ``miniapi`` on 443, the source page's port, + the apiserver rows of the table
                          (+ ``LAB_TUNNEL``'s flags, and the Konnectivity server beside it: lab/tunnel.py).
3. ``controller-manager`` ``mini-controller-manager`` (CSR signing, service accounts, node IPAM).
4. ``kubelet``            the node: its pod network (lab/podnet.py), then ``minikubelet`` of node
                          ``LAB_NODE_NAME`` (+ the kubelet rows of the table) and ``minikubeproxy``
                          (+ ``sshd`` or the Konnectivity agent with ``LAB_TUNNEL=ssh|konnectivity``).
5. ``router``             forwarding (ip_forward=1 comes from the compose file) + a route per pod CIDR.
6. ``attacker``           in the router's namespace: honest (``LAB_ATTACK=off``) or intercepting
                          (``LAB_ATTACK=intercept``), see lab/attacker/run.py.
7. ``idle``               the client container between ``docker compose exec`` sessions.
8. ``bootstrap-token``    one-shot: the Secret ``kube-system/bootstrap-token-<id>`` (as ``kubeadm token create``)
                          for the nodes of ``LAB_JOIN_NODES`` (node3: TLS bootstrapping, scenario 6).

Routes across the router are set by docker/entrypoint.sh before any role starts.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from lab import podnet, tunnel
from lab.topology import Topology, from_env
from minilab.profiles import Component, Level, flags_for, render, resolve

KUBE = Path("/etc/kubernetes")  # the pki volume on the control plane; the node's own volume on a node
NODE_VOLUMES = Path("/nodes")  # the pki job's view of the per-node volumes: /nodes/NAME
READY = Path("/run/lab/ready")
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
CLUSTER_CIDR = "10.244.0.0/16"  # lab/topology.py: each node's --pod-cidr is a /24 of it


def levels_from_env(env: Mapping[str, str] | None = None) -> dict[str, Level]:
    e = os.environ if env is None else env
    return resolve(e.get("LAB_PROFILE", "insecure"), [e.get("LAB_SET", "")])


def pki_argv(top: Topology) -> list[str]:
    argv = ["minipki", "init", "--dir", str(KUBE), "--apiserver-url", top.apiserver_url,
            "--apiserver-cert-extra-sans", "apiserver", "--key-type", "ec"]
    for node in top.nodes:
        argv += ["--node", f"{node.name}={node.ip}"]
    return argv


def apiserver_argv(top: Topology, levels: Mapping[str, Level]) -> list[str]:
    p = KUBE / "pki"
    return ["miniapi", "--secure-port", str(top.apiserver_port), "--bind-address", "0.0.0.0",
            "--advertise-address", top.apiserver_ip,
            "--tls-cert-file", f"{p}/apiserver.crt", "--tls-private-key-file", f"{p}/apiserver.key",
            "--client-ca-file", f"{p}/ca.crt", "--token-auth-file", f"{KUBE}/tokens.csv",
            "--service-account-signing-key-file", f"{p}/sa.key", "--service-account-key-file", f"{p}/sa.pub",
            "--service-account-issuer", SA_ISSUER, "--service-cluster-ip-range", "10.96.0.0/12",
            "--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction",  # kubeadm's
            "--enable-bootstrap-token-auth",
            "--kubelet-client-certificate", f"{p}/apiserver-kubelet-client.crt",
            "--kubelet-client-key", f"{p}/apiserver-kubelet-client.key",
            # kubeadm's choice: node names do not resolve across the lab's networks, IPs do.
            "--kubelet-preferred-address-types", "InternalIP,ExternalIP,Hostname",
            "--data-dir", "/var/lib/miniapi", "--audit-log-path", "/var/log/kubernetes/audit.log",
            *flags_for(Component.APISERVER, levels, ca=f"{p}/ca.crt"),
            *tunnel.apiserver_flags(top, levels, KUBE, tunnel.mode())]


def controller_manager_argv() -> list[str]:
    p = KUBE / "pki"
    return ["mini-controller-manager", "--kubeconfig", f"{KUBE}/controller-manager.conf",
            "--cluster-signing-cert-file", f"{p}/ca.crt", "--cluster-signing-key-file", f"{p}/ca.key",
            "--root-ca-file", f"{p}/ca.crt", "--allocate-node-cidrs=true", "--cluster-cidr", CLUSTER_CIDR,
            "--leader-elect=false"]


def kubelet_argv(top: Topology, name: str, levels: Mapping[str, Level]) -> list[str]:
    node = top.node(name)
    p = KUBE / "pki"
    if node in top.joined:  # TLS bootstrapping; the hardened serving cert comes by --rotate-server-certificates
        return ["minikubelet", "--kubeconfig", f"{KUBE}/kubelet.conf", "--bootstrap-kubeconfig",
                f"{KUBE}/bootstrap-kubelet.conf", "--hostname-override", node.name, "--node-ip", node.ip,
                "--address", "0.0.0.0", "--port", "10250", "--root-dir", "/var/lib/kubelet",
                *flags_for(Component.KUBELET, levels, joined=True, ca=f"{p}/ca.crt", cert="", key="",
                           read_only_port="10255")]
    return ["minikubelet", "--kubeconfig", f"{KUBE}/kubelet.conf", "--hostname-override", node.name,
            "--node-ip", node.ip, "--address", "0.0.0.0", "--port", "10250", "--root-dir", "/var/lib/kubelet",
            "--pod-cidr", top.pod_cidr(name),
            *flags_for(Component.KUBELET, levels, ca=f"{p}/ca.crt", cert=f"{p}/kubelet.crt",
                       key=f"{p}/kubelet.key", read_only_port="10255")]


def kube_proxy_argv(name: str) -> list[str]:
    """The node's kube-proxy: the ``kubernetes`` service VIP 10.96.0.1:443 -> 10.221.1.10:443 (iptables
    DNAT), with kubeadm's kube-proxy identity (system:kube-proxy, copied here by the pki job)."""
    return ["minikubeproxy", "--kubeconfig", f"{KUBE}/kube-proxy.conf", "--hostname-override", name,
            "--proxy-mode", "iptables"]


def _exec(argv: list[str]) -> None:
    print("+ " + shlex.join(argv), flush=True)
    os.execvp(argv[0], argv)


def _run(argv: list[str]) -> None:
    print("+ " + shlex.join(argv), flush=True)
    subprocess.run(argv, check=True)


def _mark_ready() -> None:
    READY.parent.mkdir(parents=True, exist_ok=True)
    READY.touch()


def _wait_forever() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _mark_ready()
    while True:
        signal.pause()


def role_pki(top: Topology) -> None:
    _run(pki_argv(top))
    tunnel.provision(top, KUBE)
    for node in top.nodes:
        target = NODE_VOLUMES / node.name
        if not target.is_dir():
            print(f"no volume mounted at {target}; node {node.name} gets no files", flush=True)
            continue
        shutil.copytree(KUBE / "nodes" / node.name, target, dirs_exist_ok=True)
        shutil.copy2(KUBE / "kube-proxy.conf", target / "kube-proxy.conf")
        print(f"copied nodes/{node.name}/ (kubelet.conf, pki/) and kube-proxy.conf into {node.name}'s volume",
              flush=True)
    for node in top.joined:  # TLS bootstrapping: the cluster CA and the bootstrap token's kubeconfig, nothing else
        target = NODE_VOLUMES / node.name
        if not target.is_dir():
            print(f"no volume mounted at {target}; node {node.name} gets no files", flush=True)
            continue
        (target / "pki").mkdir(exist_ok=True)
        shutil.copy2(KUBE / "pki" / "ca.crt", target / "pki" / "ca.crt")
        shutil.copy2(KUBE / "bootstrap-kubelet.conf", target / "bootstrap-kubelet.conf")
        shutil.copy2(KUBE / "kube-proxy.conf", target / "kube-proxy.conf")  # kube-proxy's, as a DaemonSet would get
        if (KUBE / "nodes" / node.name).is_dir():  # the tunnels' material (lab/tunnel.py)
            shutil.copytree(KUBE / "nodes" / node.name, target, dirs_exist_ok=True)
        print(f"copied pki/ca.crt, bootstrap-kubelet.conf and kube-proxy.conf (no kubelet credentials) into "
              f"{node.name}'s volume", flush=True)


def role_bootstrap_token(top: Topology) -> None:
    """One-shot, once the apiserver is up: the bootstrap token of bootstrap-kubelet.conf as the Secret
    ``kube-system/bootstrap-token-<id>``, with the fields ``kubeadm token create`` writes (24 h TTL)."""
    import datetime as dt

    token_id, secret = (KUBE / "bootstrap-token").read_text().strip().split(".")
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fields = {"description": "lab: bootstrap token for the nodes of LAB_JOIN_NODES (kubeadm token create)",
              "token-id": token_id, "token-secret": secret, "expiration": expires,
              "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
              "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token"}
    argv = ["kubectl", "--kubeconfig", str(KUBE / "admin.conf"), "-n", "kube-system", "create", "secret", "generic",
            f"bootstrap-token-{token_id}", "--type", "bootstrap.kubernetes.io/token",
            *(f"--from-literal={k}={v}" for k, v in fields.items())]
    print("+ " + shlex.join(a if not a.startswith("--from-literal=token-secret=") else
                            "--from-literal=token-secret=<secret>" for a in argv), flush=True)
    got = subprocess.run(argv, capture_output=True, text=True)
    print((got.stdout + got.stderr).strip(), flush=True)
    if got.returncode != 0 and "AlreadyExists" not in got.stderr:
        sys.exit(got.returncode)


def role_apiserver(top: Topology) -> None:
    levels = levels_from_env()
    print(render(levels), flush=True)
    beside = tunnel.prepare_apiserver(levels, KUBE, tunnel.mode())
    if not beside:
        _exec(apiserver_argv(top, levels))
    sys.exit(_supervise([*beside, apiserver_argv(top, levels)]))


def role_controller_manager(top: Topology) -> None:
    _exec(controller_manager_argv())


def node_processes(top: Topology, name: str, levels: Mapping[str, Level]) -> list[list[str]]:
    """What one node container runs, each as its real command line: the kubelet first; the
    kube-proxy-like component, the SSH server (scenario 7) and the tunnel agent (scenario 8) join here."""
    return [kubelet_argv(top, name, levels), kube_proxy_argv(name),
            *tunnel.node_processes(top, name, KUBE, tunnel.mode())]


RESTART_SEC = 2.0  # kubeadm's kubelet unit: Restart=always, RestartSec=10 (shorter here: a lab)


def _supervise(argvs: list[list[str]]) -> int:
    """Start every process and restart one that exits, as systemd's ``Restart=always`` does for kubeadm's
    kubelet unit (the kubelet exits, e.g., when its TLS bootstrap cannot reach the apiserver: here the
    first attempt of a joining node meets the attacker's certificate, scenario 9). On SIGTERM/SIGINT stop
    them all and exit 0."""
    children: dict[int, tuple[list[str], subprocess.Popen[bytes]]] = {}
    stopping = False

    def start(argv: list[str]) -> None:
        print("+ " + shlex.join(argv), flush=True)
        child = subprocess.Popen(argv)
        children[child.pid] = (argv, child)

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for _, child in children.values():
            if child.poll() is None:
                child.terminate()

    for argv in argvs:
        start(argv)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while children and not stopping:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        entry = children.pop(pid, None)
        if entry is None or stopping:
            continue
        print(f"lab role: {entry[0][0]} exited {os.waitstatus_to_exitcode(status)}; restarting it in "
              f"{RESTART_SEC:.0f}s (systemd's Restart=always)", flush=True)
        time.sleep(RESTART_SEC)
        if not stopping:
            start(entry[0])
    for _, child in children.values():
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
    return 0


def role_kubelet(top: Topology) -> None:
    name = os.environ.get("LAB_NODE_NAME", "")
    if any(n.name == name for n in top.nodes):  # a node outside LAB_NODES has no fixed pod CIDR to route
        podnet.apply(podnet.node_commands(top, name))
    tunnel.prepare_node(top, name, KUBE, tunnel.mode())
    argvs = node_processes(top, name, levels_from_env())
    if len(argvs) == 1:
        _exec(argvs[0])
    sys.exit(_supervise(argvs))


def role_router(top: Topology) -> None:
    print(f"router: forwarding between {top.control_cidr} (control plane) and {top.nodes_cidr} (nodes)",
          flush=True)
    podnet.apply(podnet.router_commands(top))
    _wait_forever()


def role_attacker(top: Topology) -> None:
    from lab.attacker.run import main as attacker_main

    sys.exit(attacker_main(top))


def role_idle(top: Topology) -> None:
    _wait_forever()


ROLES: dict[str, Callable[[Topology], None]] = {
    "pki": role_pki, "apiserver": role_apiserver, "controller-manager": role_controller_manager,
    "kubelet": role_kubelet, "bootstrap-token": role_bootstrap_token, "router": role_router,
    "attacker": role_attacker, "idle": role_idle,
}


def main(name: str) -> int:
    if name not in ROLES:
        print(f"lab role: unknown role {name!r}; known: {', '.join(ROLES)}", file=sys.stderr)
        return 2
    ROLES[name](from_env())
    return 0
