"""The apiserver's dialers: how it reaches kubelets (and, later, nodes, pods and services).

Layers, bottom up: :mod:`.dialer` (a byte stream: direct TCP; SSH tunnel and Konnectivity later),
:mod:`.kubelet` (address choice, TLS with the kubelet client certificate, verification with Go's
rules from :mod:`.x509verify`, one log line per connection), :mod:`.http1` (sans-IO HTTP/1.1),
:mod:`.upgrade` (101 Switching Protocols on both ends: exec, attach, port-forward).
"""

from miniapi.proxy.dialer import Dialer, DirectDialer
from miniapi.proxy.errors import DialError, response_error, to_status
from miniapi.proxy.kubelet import ConnectionInfo, KubeletConnection, KubeletDialer, KubeletResponse, Mode

__all__ = ["ConnectionInfo", "DialError", "Dialer", "DirectDialer", "KubeletConnection", "KubeletDialer",
           "KubeletResponse", "Mode", "response_error", "to_status"]
