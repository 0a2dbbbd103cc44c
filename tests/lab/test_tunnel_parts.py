"""The pure parts of scenarios 6-8, no docker: the tunnel modes' command lines and files (lab/tunnel.py),
the attacker's port-22 and agent-port rules, the SSH impersonator's decoding, node3's bootstrap kubelet."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from lab import roles, topology, tunnel
from lab.attacker import giveup
from lab.attacker.run import mitmdump_argv, nat_rules
from lab.attacker.sshimpersonate import classify, http_lines
from miniapi.config import from_args as apiserver_config
from minilab.profiles import Component, flags_for, resolve

TOP = topology.from_env({"LAB_JOIN_NODES": "node3=10.221.2.13"})


def test_tunnel_mode_is_checked() -> None:
    assert tunnel.mode({}) == "direct" and tunnel.mode({"LAB_TUNNEL": "ssh"}) == "ssh"
    with pytest.raises(tunnel.TunnelError, match="LAB_TUNNEL must be one of direct, ssh, konnectivity"):
        tunnel.mode({"LAB_TUNNEL": "vpn"})


@pytest.mark.parametrize("profile", ["insecure", "hardened"])
def test_the_ssh_flags_parse_and_known_hosts_follow_the_profile(profile: str, monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    monkeypatch.setenv("LAB_TUNNEL", "ssh")
    argv = roles.apiserver_argv(TOP, resolve(profile))
    tunnel_flags = argv[argv.index("--ssh-user"):]
    assert tunnel_flags == tunnel.apiserver_flags(TOP, resolve(profile), roles.KUBE, "ssh")
    key = tmp_path / "sa.key"  # the other flags name files of the lab's volumes; these parse on their own
    key.write_text("")
    cfg, _ = apiserver_config(["--service-account-issuer", roles.SA_ISSUER, "--service-account-signing-key-file",
                               str(key), *tunnel_flags])
    assert (cfg.ssh_user, cfg.ssh_keyfile) == ("kube-tunnel", "/etc/kubernetes/ssh/tunnel.key")
    assert cfg.ssh_known_hosts == ("/var/lib/miniapi/known_hosts" if profile == "hardened" else "")
    assert any("INSECURE: SSH tunnels do not verify" in w for w in cfg.warnings) == (profile == "insecure")


def test_the_ssh_row_stays_out_of_the_plain_apiserver_flags() -> None:
    """minilab's apiserver (no SSH tunnels) must not get --ssh-known-hosts from a hardened profile."""
    assert not any("ssh" in f for f in flags_for(Component.APISERVER, resolve("hardened"), ca="ca.crt"))
    assert flags_for(Component.SSH_TUNNEL, resolve("hardened"), known_hosts="kh") == ["--ssh-known-hosts=kh"]


def test_konnectivity_flags_and_node_processes() -> None:
    levels = resolve("hardened")
    assert tunnel.apiserver_flags(TOP, levels, Path("/k"), "konnectivity") == [
        "--egress-selector-config-file", "/var/lib/miniapi/egress-selector-configuration.yaml"]
    agent = tunnel.node_processes(TOP, "node3", Path("/k"), "konnectivity")[0]
    assert agent[agent.index("--proxy-server-host") + 1] == "10.221.1.10"
    assert agent[agent.index("--agent-identifiers") + 1] == "host=node3&ipv4=10.221.2.13"
    assert tunnel.node_processes(TOP, "node1", Path("/k"), "ssh") == [
        ["/usr/sbin/sshd", "-D", "-e", "-f", "/k/ssh/sshd_config"]]
    assert tunnel.node_processes(TOP, "node1", Path("/k"), "direct") == []


def test_provision_makes_keys_known_hosts_and_agent_certs(tmp_path: Path) -> None:
    tunnel.provision(TOP, tmp_path)
    assert (tmp_path / "ssh" / "tunnel.key.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    known = (tmp_path / "ssh" / "known_hosts").read_text().splitlines()
    assert [line.split()[:2] for line in known] == [["10.221.2.11", "ssh-ed25519"], ["10.221.2.12", "ssh-ed25519"],
                                                    ["10.221.2.13", "ssh-ed25519"]]
    for node in TOP.all_nodes:
        d = tmp_path / "nodes" / node.name
        assert (d / "ssh" / "authorized_keys").read_text().startswith('restrict,port-forwarding,command="/bin/false" '
                                                                      "ssh-rsa ")
        assert (d / "konnectivity" / "agent.key").exists()
    server = x509.load_pem_x509_certificate((tmp_path / "konnectivity" / "server.crt").read_bytes())
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.221.1.10" in [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    before = known
    tunnel.provision(TOP, tmp_path)  # a re-run (compose starts the pki job again) keeps every key
    assert (tmp_path / "ssh" / "known_hosts").read_text().splitlines() == before


def test_attacker_rules_for_ssh_and_the_agent_port() -> None:
    rules = nat_rules(TOP, [22, 8132, 10250])
    assert rules[0][:7] == ["PREROUTING", "-s", "10.221.1.10", "-p", "tcp", "--dport", "22"]
    assert rules[0][-1] == "2222"
    assert rules[1][:3] == ["PREROUTING", "-d", "10.221.1.10"] and rules[1][-1] == "8080"
    assert mitmdump_argv()[-1].endswith("addon.py")  # whose GiveUp part gives up on the agent port too
    assert "10.221.1.10:8132" in giveup.GIVE_UP_ON and "10.221.1.10:10250" not in giveup.GIVE_UP_ON


def test_the_impersonator_reads_http_and_not_tls() -> None:
    assert classify(b"\x16\x03\x01\x02\x00") == "tls"
    assert classify(b"GET /pods HTTP/1.1\r\nHost: x\r\n\r\n") == "http"
    assert classify(b"SSH-2.0-x") == "bytes"
    body = b'{"kind":"PodList","items":[{"metadata":{"namespace":"default","name":"p"},' \
           b'"spec":{"containers":[{"env":[{"name":"API_KEY","value":"s3cret"}]}]}}]}'
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + f"{len(body):x}".encode() + b"\r\n" + \
        body + b"\r\n0\r\n\r\n"
    assert http_lines(chunked) == ["HTTP/1.1 200 OK", "pod default/p env API_KEY=s3cret"]
    assert http_lines(b"HTTP/1.1 200 OK\r\n\r\nok\n") == ["HTTP/1.1 200 OK", "ok"]


@pytest.mark.parametrize("profile", ["insecure", "hardened"])
def test_node3_bootstraps_and_asks_for_a_serving_cert_only_when_hardened(profile: str) -> None:
    argv = roles.kubelet_argv(TOP, "node3", resolve(profile))
    assert argv[argv.index("--bootstrap-kubeconfig") + 1] == "/etc/kubernetes/bootstrap-kubelet.conf"
    assert ("--rotate-server-certificates" in argv) == (profile == "hardened")
    assert not any(a.startswith("--tls-cert-file") for a in argv)
    assert roles.pki_argv(TOP)[-4:] == ["--node", "node1=10.221.2.11", "--node", "node2=10.221.2.12"]
