"""minikubeproxy: the kube-proxy of the local cluster and the docker lab.

It makes every Service ``ClusterIP:port`` reach the service's ready endpoints on this host; in
particular the ``kubernetes`` service's virtual IP (the first address of
``--service-cluster-ip-range``, port 443) reaches the apiserver's HTTPS endpoint, which is how pods
talk to the control plane (the source page: "Der ``kubernetes``-Dienst ... ist mit einer virtuellen
IP-Adresse konfiguriert, die (über den Kube-Proxy) an den HTTPS-Endpunkt auf dem Apiserver
umgeleitet wird").

Modules: :mod:`.rules` (pure: services + endpoints -> service ports -> iptables text),
:mod:`.iptables` and :mod:`.userspace` (the two modes' I/O), :mod:`.proxier` (informers and sync
loop), ``__main__`` (flags).

A separate process, as the real kube-proxy is a separate binary (a DaemonSet), not part of the kubelet.
"""
