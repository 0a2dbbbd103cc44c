"""A controller-manager: the control loops of kube-controller-manager that sit on the control plane <->
node paths, plus an in-process scheduler, talking to the apiserver like any other client.

Map (one controller per module; each module's docstring lists its rules):

    config.py               flags named like kube-controller-manager's -> frozen Config
    manager.py              start-up order, leader election, shutdown
    informer.py             list + watch + cache + handlers, shared per resource
    workqueue.py            per-key de-duplicated queue with back-off, and the worker loop
    events.py               core/v1 Events with counts, as client-go's recorder
    leaderelection.py       Lease kube-system/kube-controller-manager
    csrapproving.py         auto-approve kubelet client CSRs after a SubjectAccessReview
    csrsigning.py           sign approved kubernetes.io/* CSRs with the cluster CA
    serviceaccount.py       ServiceAccount "default" in every namespace
    rootcacertpublisher.py  ConfigMap "kube-root-ca.crt" in every namespace
    nodelifecycle.py        missed heartbeats -> Ready=Unknown + unreachable taints
    nodeipam.py             spec.podCIDR from --cluster-cidr
    endpoints.py            Endpoints of every Service with a selector: its ready pods' IPs and ports
    scheduling.py           the scheduler's filters and scoring (pure)
    scheduler.py            bind pods to nodes (kube-scheduler's job, run in-process here)
"""

from miniapi.controllermanager.config import Config, ConfigError
from miniapi.controllermanager.manager import run

__all__ = ["Config", "ConfigError", "run"]
