"""What a lab is on disk: its directory layout and ``lab.json``, the record of its settings, nodes and
processes, read by every ``minilab`` command (``up`` writes it, ``status``/``down`` read it).

Layout under the lab directory (default ``_run/lab``); the PKI part is minipki's kubeadm layout::

    pki/, admin.conf, controller-manager.conf,   minipki init (pki/files.py)
    bootstrap-kubelet.conf, bootstrap-token,
    tokens.csv, nodes/NAME/...                   pre-made node identities (kubelet.conf, certs)
    lab.json                                     this module: settings, nodes, processes
    data/                                        the apiserver's SQLite store (--data-dir)
    audit.log                                    --audit-log-path
    logs/apiserver.log, controller-manager.log,  stdout+stderr of each process
        kubelet-NAME.log, sshd-NAME.log, ...
    ssh/                                         --tunnel ssh: the apiserver's key pair, known_hosts,
                                                 ssh/NAME/ each node's sshd (host key, sshd_config)
    konnectivity/, egress-selector-configuration.yaml   --tunnel konnectivity (minilab/tunnels.py)
    kubelet/NAME/                                the kubelet's --root-dir (pods, CRI logs; pki/ and
                                                 kubelet.conf of a node joined by bootstrap token)

``lab.json`` (written atomically)::

    {"settings": {"port": 6443, "profile": "insecure", "overrides": [], "tunnel": "direct", ...},
     "nodes": [{"name": "node1", "ip": "127.0.0.2", "port": 10250, "readOnlyPort": 10255, "joined": false}],
     "procs": {"apiserver": {"pid": 4242, "ticks": 1234567, "address": "https://127.0.0.1:6443",
                             "log": ".../logs/apiserver.log", "argv": [...]}, ...}}

A process is identified by pid AND start time (``ticks``, from /proc), so a recycled pid is never
mistaken for a lab process.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "lab.json"


@dataclass(frozen=True)
class Settings:
    port: int = 6443
    address: str = "127.0.0.1"
    profile: str = "insecure"
    overrides: tuple[str, ...] = ()
    cluster_cidr: str = "127.244.0.0/16"
    service_cidr: str = "127.96.0.0/16"  # loopback, so that a VIP can be reached (and listened on) on this host
    key_type: str = "ec"
    tunnel: str = "direct"  # how the apiserver reaches the nodes: direct, ssh or konnectivity (tunnelmode.py)
    ssh_port: int = field(default=0, compare=False)  # the nodes' sshd port in ssh mode (22 where it is free)

    @property
    def url(self) -> str:
        return f"https://{self.address}:{self.port}"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    ip: str
    port: int = 10250
    read_only_port: int = 10255
    joined: bool = False  # by bootstrap token only: no pre-made certificate


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ticks: int
    address: str
    log: str
    argv: tuple[str, ...]


@dataclass
class LabState:
    settings: Settings
    nodes: list[NodeSpec] = field(default_factory=list)
    procs: dict[str, ProcInfo] = field(default_factory=dict)

    def node(self, name: str) -> NodeSpec | None:
        return next((n for n in self.nodes if n.name == name), None)


@dataclass(frozen=True)
class LabDir:
    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / STATE_FILE

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def audit_log(self) -> Path:
        return self.root / "audit.log"

    @property
    def admin_conf(self) -> Path:
        return self.root / "admin.conf"

    @property
    def ca_crt(self) -> Path:
        return self.root / "pki" / "ca.crt"

    def pki(self, name: str) -> Path:
        return self.root / "pki" / name

    def log(self, proc: str) -> Path:
        return self.logs / f"{proc.replace('/', '-')}.log"

    def kubelet_root(self, node: str) -> Path:
        return self.root / "kubelet" / node

    def node_dir(self, node: NodeSpec) -> Path:
        """Where the node's kubelet.conf lives: minipki's nodes/NAME, or the kubelet's own dir."""
        return self.kubelet_root(node.name) if node.joined else self.root / "nodes" / node.name

    def kubeconfig(self, node: NodeSpec) -> Path:
        return self.node_dir(node) / "kubelet.conf"

    def load(self) -> LabState | None:
        try:
            raw = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return None
        return _state_from_json(raw)

    def save(self, state: LabState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(_state_to_json(state), indent=1) + "\n")
        os.replace(tmp, self.state_file)


def _state_to_json(state: LabState) -> dict[str, Any]:
    return {"settings": asdict(state.settings),
            "nodes": [{"name": n.name, "ip": n.ip, "port": n.port, "readOnlyPort": n.read_only_port,
                       "joined": n.joined} for n in state.nodes],
            "procs": {name: asdict(p) for name, p in state.procs.items()}}


def _state_from_json(raw: dict[str, Any]) -> LabState:
    s = raw.get("settings") or {}
    settings = Settings(**{**s, "overrides": tuple(s.get("overrides") or ())})
    nodes = [NodeSpec(n["name"], n["ip"], int(n["port"]), int(n["readOnlyPort"]), bool(n.get("joined")))
             for n in raw.get("nodes") or ()]
    procs = {name: ProcInfo(int(p["pid"]), int(p["ticks"]), str(p["address"]), str(p["log"]),
                            tuple(p["argv"])) for name, p in (raw.get("procs") or {}).items()}
    return LabState(settings, nodes, procs)
