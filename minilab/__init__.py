"""minilab: the one-command local cluster (the main job without docker).

``minilab up`` makes the PKI and starts the apiserver, the controller-manager and N kubelets as local
processes, each node on its own loopback address with the standard kubelet ports, and waits until
every node is Ready; ``status``, ``down`` (no process left behind), ``env``, ``restart-node`` and
``restart-apiserver`` act on the lab recorded in its directory.

Modules: ``profiles`` (the insecure/hardened table, per path), ``state`` (the lab directory and
lab.json), ``commands`` (each component's command line), ``procs`` (spawn, stop, /proc), ``lab``
(the verbs), ``waits`` (readiness, from outside), ``__main__`` (the CLI).
"""

from minilab.lab import UpOptions, down, restart_apiserver, restart_node, up
from minilab.profiles import PATHS, Level
from minilab.state import LabDir, LabState, NodeSpec, Settings
from minilab.waits import LabError

__all__ = ["PATHS", "LabDir", "LabError", "LabState", "Level", "NodeSpec", "Settings", "UpOptions", "down",
           "restart_apiserver", "restart_node", "up"]
