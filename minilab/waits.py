"""Waiting on the cluster from outside, as the admin: the apiserver's ``/readyz``, every Node Ready
with a podCIDR (LIST, then WATCH from its resourceVersion), and the bootstrap-token Secret that
``kubeadm token create`` would make. Each wait also checks that the lab's processes still live, so a
component that dies says so (with the end of its log) instead of running into the timeout.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from pathlib import Path
from typing import Any

from minilab import procs
from minilab.state import LabDir, LabState

APISERVER, KCM, KUBE_PROXY = "apiserver", "controller-manager", "kube-proxy"


class LabError(Exception):
    """A failure the user can act on; the message says what to do."""


def kubelet_key(node: str) -> str:
    return f"kubelet/{node}"


async def wait_apiserver(kc: Any, lab: LabDir, state: LabState) -> None:
    while True:
        _check_alive(lab, state, [APISERVER])
        try:
            await kc.request("GET", "/readyz")
            return
        except Exception:  # refused while it starts; 500 while its post-start hooks run
            await asyncio.sleep(0.02)


async def ensure_bootstrap_secret(kc: Any, lab: LabDir) -> None:
    from miniapi.client import ClientError

    token_id, secret = (lab.root / "bootstrap-token").read_text().strip().split(".")
    data = {"description": "minilab: bootstrap token for --join-with-bootstrap-token (kubeadm token create)",
            "token-id": token_id, "token-secret": secret, "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true"}
    obj = {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
           "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
           "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
    try:
        await kc.create("secrets", obj, "kube-system")
    except ClientError as e:
        if e.code != 409:
            raise


def node_ready(node: dict[str, Any]) -> bool:
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in (node.get("status") or {}).get("conditions") or ())
    return ready and bool((node.get("spec") or {}).get("podCIDR"))


async def wait_nodes_ready(kc: Any, lab: LabDir, state: LabState, names: list[str],
                            newer_than: float = 0.0) -> None:
    """LIST, then WATCH from its resourceVersion, until every named node is Ready (and beat after
    ``newer_than``); every 0.5 s without news, check that the kubelets still live."""
    from miniapi.client import ClientError

    pending = set(names)
    keys = [kubelet_key(n) for n in names]
    while pending:
        _check_alive(lab, state, [APISERVER, KCM, *keys])
        try:
            lst = await kc.list("nodes")
            pending -= {n["metadata"]["name"] for n in lst["items"] if _fresh(n, newer_than)}
            rv = lst["metadata"]["resourceVersion"]
            async with asyncio.timeout(0.5):
                async for ev in kc.watch("nodes", resource_version=rv, timeout_seconds=5):
                    if ev["type"] in ("ADDED", "MODIFIED") and _fresh(ev["object"], newer_than):
                        pending.discard(ev["object"]["metadata"]["name"])
                        if not pending:
                            return
        except (TimeoutError, ClientError, OSError):
            await asyncio.sleep(0.02)


def _fresh(node: dict[str, Any], newer_than: float) -> bool:
    if not node_ready(node):
        return False
    if not newer_than:
        return True
    beat = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["lastHeartbeatTime"]
    return dt.datetime.fromisoformat(beat.replace("Z", "+00:00")).timestamp() >= int(newer_than)


def _check_alive(lab: LabDir, state: LabState, keys: list[str]) -> None:
    for key in keys:
        info = state.procs.get(key)
        if info is not None and not procs.alive(info):
            tail = _tail(Path(info.log))
            raise LabError(f"{key} exited; the end of {info.log}:\n{tail}\n"
                           f"(`minilab --dir {lab.root} down` stops the rest)")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def node_table(lab: LabDir) -> list[tuple[str, str, str]]:
    """(name, Ready status, podCIDR) per Node, as the admin sees them."""
    from miniapi.client import KubeClient

    async with KubeClient.from_kubeconfig(lab.admin_conf, timeout=3) as kc:
        nodes = (await kc.list("nodes"))["items"]
    rows = []
    for n in nodes:
        ready = next((c["status"] for c in (n.get("status") or {}).get("conditions") or ()
                      if c["type"] == "Ready"), "Unknown")
        rows.append((n["metadata"]["name"], ready, str((n.get("spec") or {}).get("podCIDR", ""))))
    return rows
