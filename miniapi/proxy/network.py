"""Which Dialer the apiserver uses for the cluster network, chosen from its flags, and its lifecycle.

1. ``--ssh-user``/``--ssh-keyfile``: :class:`~miniapi.proxy.ssh.SSHTunnelDialer` (historical, until 1.21);
2. ``--egress-selector-config-file`` with a ``cluster`` selection of ``HTTPConnect``:
   :class:`~miniapi.proxy.egress.HTTPConnectDialer` (Konnectivity); ``Direct`` or no ``cluster`` selection:
3. :class:`~miniapi.proxy.dialer.DirectDialer`, the default.

A dialer that holds connections of its own (the SSH tunnels) has ``start(store)``/``stop()`` and
contributes ``/healthz`` checks (name -> function returning None or the failure).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from miniapi.config import Config
from miniapi.proxy.dialer import Dialer, DirectDialer

HealthCheck = Callable[[], "str | None"]


def build_dialer(cfg: Config) -> Dialer:
    if cfg.ssh_user:
        from miniapi.proxy.ssh import SSHOptions, SSHTunnelDialer

        return SSHTunnelDialer(SSHOptions(cfg.ssh_user, cfg.ssh_keyfile, cfg.ssh_known_hosts, cfg.ssh_port))
    if cfg.egress_selector_config_file:
        from miniapi.proxy.egress import HTTPConnectDialer, load

        cluster = load(cfg.egress_selector_config_file).get("cluster")
        if cluster is not None and cluster.proxy_protocol == "HTTPConnect":
            return HTTPConnectDialer(cluster)
    return DirectDialer()


async def start(dialer: Dialer, store: Any) -> None:
    starter = getattr(dialer, "start", None)
    if starter is not None:
        await starter(store)


async def stop(dialer: Dialer) -> None:
    stopper = getattr(dialer, "stop", None)
    if stopper is not None:
        await stopper()


def health_checks(dialer: Dialer) -> dict[str, HealthCheck]:
    checks = getattr(dialer, "health_checks", None)
    return dict(checks()) if checks is not None else {}
