"""minikubeproxy.rules: services + endpoints -> service ports -> the nat table, byte for byte."""

from __future__ import annotations

from typing import Any

from minikubeproxy.rules import (
    Endpoint,
    ServicePort,
    render_iptables,
    service_chain,
    service_ports,
    stale_chains,
)


def svc(name: str, ip: str, *ports: dict[str, Any], ns: str = "default", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name}, "spec": {"clusterIP": ip, "ports": list(ports), **spec}}


def eps(name: str, *subsets: dict[str, Any], ns: str = "default") -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name}, "subsets": list(subsets)}


KUBERNETES = ServicePort("default/kubernetes:https", "127.96.0.1", 443, "TCP", (Endpoint("127.0.0.1", 6443),))


def test_the_kubernetes_service_chain_name_is_the_real_one() -> None:
    assert service_chain(KUBERNETES) == "KUBE-SVC-NPX46M4PTMTKRN6Y"  # as on every kubeadm cluster


def test_service_ports_take_ready_addresses_of_the_matching_port_name() -> None:
    services = [svc("kubernetes", "127.96.0.1", {"name": "https", "port": 443, "protocol": "TCP"}),
                svc("web", "127.96.0.10", {"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}),
                svc("headless", "None", {"port": 80}), svc("ext", "", {"port": 80}, type="ExternalName"),
                svc("lonely", "127.96.0.11", {"port": 8080})]
    endpoints = [eps("kubernetes", {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 6443}]}),
                 eps("web", {"addresses": [{"ip": "127.244.1.3"}, {"ip": "127.244.1.2"}],
                             "notReadyAddresses": [{"ip": "127.244.1.9"}],
                             "ports": [{"name": "http", "port": 8080}, {"name": "other", "port": 9}]})]
    assert service_ports(services, endpoints) == [
        KUBERNETES,
        ServicePort("default/lonely", "127.96.0.11", 8080, "TCP", ()),
        ServicePort("default/web:http", "127.96.0.10", 80, "TCP",
                    (Endpoint("127.244.1.2", 8080), Endpoint("127.244.1.3", 8080)))]


def test_render_one_endpoint() -> None:
    text = render_iptables([KUBERNETES])
    sep = [line for line in text.splitlines() if line.startswith(":KUBE-SEP-")][0][1:].split()[0]
    assert text == (
        "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-NPX46M4PTMTKRN6Y - [0:0]\n"
        f":{sep} - [0:0]\n"
        '-A KUBE-SERVICES -d 127.96.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" '
        "-m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y\n"
        '-A KUBE-SVC-NPX46M4PTMTKRN6Y -m comment --comment "default/kubernetes:https -> 127.0.0.1:6443" '
        f"-j {sep}\n"
        f"-A {sep} -p tcp -m comment --comment default/kubernetes:https -m tcp -j DNAT --to-destination "
        "127.0.0.1:6443\nCOMMIT\n")


def test_render_spreads_over_endpoints_with_decreasing_probabilities() -> None:
    sp = ServicePort("default/web:http", "127.96.0.10", 80, "TCP",
                     tuple(Endpoint(f"127.244.1.{i}", 8080) for i in (2, 3, 4)))
    jumps = [line for line in render_iptables([sp]).splitlines() if line.startswith("-A KUBE-SVC-")]
    assert ["--probability 0.3333333333" in jumps[0], "--probability 0.5000000000" in jumps[1],
            "statistic" not in jumps[2]] == [True, True, True]


def test_services_without_endpoints_get_no_rule_and_a_prefix_keeps_clusters_apart() -> None:
    lonely = ServicePort("default/lonely", "127.96.0.11", 8080, "TCP", ())
    assert render_iptables([lonely], "KT1") == "*nat\n:KT1-SERVICES - [0:0]\nCOMMIT\n"


def test_stale_chains() -> None:
    text = render_iptables([KUBERNETES])
    assert stale_chains(["KUBE-SERVICES", "KUBE-SVC-NPX46M4PTMTKRN6Y", "KUBE-SVC-GONE", "KUBE-SEP-GONE",
                         "DOCKER"], text) == ["KUBE-SEP-GONE", "KUBE-SVC-GONE"]
