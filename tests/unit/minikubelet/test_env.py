"""A container's environment and command line, as the kubelet makes them."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from minikubelet.env import ContainerConfigError, command_line, container_env, expand, service_env

POD = {"metadata": {"name": "p1", "namespace": "ns1", "uid": "u1", "labels": {"app": "web"},
                    "annotations": {"team": "blue"}},
       "spec": {"nodeName": "node1", "serviceAccountName": "default"}}
OBJECTS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("secrets", "ns1", "db"): {"data": {"password": base64.b64encode(b"hunter2").decode()}},
    ("configmaps", "ns1", "cfg"): {"data": {"LEVEL": "debug", "MODE": "fast"}},
}


async def fetch(resource: str, namespace: str, name: str) -> dict[str, Any] | None:
    return OBJECTS.get((resource, namespace, name))


async def env_of(container: dict[str, Any]) -> dict[str, str]:
    return await container_env(POD, container, host_ip="127.0.0.2", pod_ip="10.244.1.2", workdir="/w", fetch=fetch)


@pytest.mark.parametrize("text, expect", [
    ("$(A)-$(B)", "1-$(B)"), ("$$(A)", "$(A)"), ("$$", "$"), ("a$", "a$"), ("$(A", "$(A"), ("$(A)$(A)", "11"),
], ids=["defined-and-not", "escaped", "dollar", "trailing", "unclosed", "twice"])
def test_expansion(text: str, expect: str) -> None:
    assert expand(text, {"A": "1"}) == expect


async def test_base_env_field_refs_and_order() -> None:
    env = await env_of({"name": "c", "env": [
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "GREETING", "value": "hi $(POD) in $(NS)"}]})
    assert env["HOSTNAME"] == "p1" and env["HOME"] == "/w" and "/usr/bin" in env["PATH"]
    assert (env["POD"], env["NS"], env["NODE"], env["IP"], env["HOST"], env["APP"]) == \
        ("p1", "ns1", "node1", "10.244.1.2", "127.0.0.2", "web")
    assert env["GREETING"] == "hi p1 in ns1"


async def test_secrets_and_configmaps() -> None:
    env = await env_of({"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "APP_"}],
                        "env": [{"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                                {"name": "APP_MODE", "value": "slow"}]})
    assert env["PASS"] == "hunter2" and env["APP_LEVEL"] == "debug" and env["APP_MODE"] == "slow"


@pytest.mark.parametrize("source, message", [
    ({"secretKeyRef": {"name": "nope", "key": "k"}}, 'secret "nope" not found'),
    ({"secretKeyRef": {"name": "db", "key": "user"}}, "couldn't find key user in Secret ns1/db"),
    ({"configMapKeyRef": {"name": "cfg", "key": "X"}}, "couldn't find key X in ConfigMap ns1/cfg"),
], ids=["no-secret", "no-key", "no-cm-key"])
async def test_missing_references_are_config_errors(source: dict[str, Any], message: str) -> None:
    with pytest.raises(ContainerConfigError, match=message):
        await env_of({"name": "c", "env": [{"name": "X", "valueFrom": source}]})


async def test_optional_references_are_skipped() -> None:
    env = await env_of({"name": "c", "env": [
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}}]})
    assert "X" not in env


def test_command_line() -> None:
    env = {"WHO": "world"}
    assert command_line({"command": ["echo"], "args": ["hello $(WHO)"]}, env) == ["echo", "hello world"]
    assert command_line({"args": ["sleep", "1"]}, env) == ["sleep", "1"]
    assert command_line({}, env) == []


KUBERNETES = {"metadata": {"name": "kubernetes", "namespace": "default"},
              "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}
WEB = {"metadata": {"name": "my-web", "namespace": "ns1"},
       "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 80, "protocol": "TCP"},
                                                     {"name": "dns-udp", "port": 53, "protocol": "UDP"}]}}
HEADLESS = {"metadata": {"name": "db", "namespace": "ns1"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}}
ELSEWHERE = {"metadata": {"name": "other", "namespace": "ns2"},
             "spec": {"clusterIP": "10.96.0.30", "ports": [{"port": 1}]}}


def test_service_links_of_the_kubernetes_service_are_exact() -> None:
    assert service_env([KUBERNETES], "ns1", False) == {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443", "KUBERNETES_PORT": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443", "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": "443", "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1"}


def test_service_links_of_the_pods_namespace_only_with_enable_service_links() -> None:
    services = [KUBERNETES, WEB, HEADLESS, ELSEWHERE]
    with_links = service_env(services, "ns1", True)
    assert {k: v for k, v in with_links.items() if k.startswith("MY_WEB")} == {
        "MY_WEB_SERVICE_HOST": "10.96.0.20", "MY_WEB_SERVICE_PORT": "80", "MY_WEB_SERVICE_PORT_DNS_UDP": "53",
        "MY_WEB_PORT": "tcp://10.96.0.20:80", "MY_WEB_PORT_80_TCP": "tcp://10.96.0.20:80",
        "MY_WEB_PORT_80_TCP_PROTO": "tcp", "MY_WEB_PORT_80_TCP_PORT": "80", "MY_WEB_PORT_80_TCP_ADDR": "10.96.0.20",
        "MY_WEB_PORT_53_UDP": "udp://10.96.0.20:53", "MY_WEB_PORT_53_UDP_PROTO": "udp",
        "MY_WEB_PORT_53_UDP_PORT": "53", "MY_WEB_PORT_53_UDP_ADDR": "10.96.0.20"}
    assert not any(k.startswith(("DB_", "OTHER_")) for k in with_links)
    assert set(service_env(services, "ns1", False)) == set(service_env([KUBERNETES], "ns1", True))


async def test_service_links_can_be_referenced_and_are_overridden_by_the_container() -> None:
    links = service_env([KUBERNETES], "ns1", True)
    env = await container_env(POD, {"name": "c", "env": [
        {"name": "API", "value": "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"},
        {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"}]}, host_ip="127.0.0.2", pod_ip="10.244.1.2",
        workdir="/w", fetch=fetch, services=links)
    assert env["API"] == "https://10.96.0.1:443"
    assert env["KUBERNETES_SERVICE_PORT"] == "6443" and env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
