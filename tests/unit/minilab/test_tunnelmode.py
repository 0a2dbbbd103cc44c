"""``minilab up --tunnel``: the files and apiserver flags of each mode, without starting anything.

The processes themselves (sshd, proxy server, agents) run in tests/e2e/test_minilab.py."""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

import pytest

from minilab import commands
from minilab.profiles import BY_NAME, Level, resolve
from minilab.sshd import sshd_binary
from minilab.state import LabDir, LabState, NodeSpec, Settings
from minilab.tunnelmode import established, host_key_checked, prepare_konnectivity, prepare_ssh
from minilab.tunnels import konnectivity_pki


def state(tunnel: str, ssh_port: int = 22) -> LabState:
    return LabState(Settings(tunnel=tunnel, ssh_port=ssh_port),
                    [NodeSpec("node1", "127.0.4.2"), NodeSpec("node2", "127.0.4.3")])


def test_the_host_key_row_is_insecure_unless_the_profile_has_it_hardened() -> None:
    # a profile table without the row (before it was added) means the historical default
    assert host_key_checked(resolve("hardened")) == ("ssh-host-key" in BY_NAME)
    assert not host_key_checked(resolve("insecure"))
    assert not host_key_checked({"ssh-host-key": Level.INSECURE})
    assert host_key_checked({"ssh-host-key": Level.HARDENED})


@pytest.mark.skipif(sshd_binary() is None, reason="OpenSSH (ssh-keygen, sshd) missing")
@pytest.mark.parametrize("port", [22, 2222])
def test_ssh_mode_pushes_the_key_and_writes_known_hosts_from_the_real_host_keys(tmp_path: Path, port: int) -> None:
    lab, s = LabDir(tmp_path), state("ssh", port)
    flags = prepare_ssh(lab, s, {"ssh-host-key": Level.INSECURE})
    key = str(tmp_path / "ssh" / "apiserver-ssh")
    assert flags == ["--ssh-user", getpass.getuser(), "--ssh-keyfile", key, *(["--ssh-port", "2222"] * (port != 22))]
    assert not (tmp_path / "ssh" / "known_hosts").exists()
    for node in ("node1", "node2"):
        authorized = (tmp_path / "ssh" / node / "authorized_keys").read_text()
        assert authorized.startswith('restrict,port-forwarding,command="/bin/false" ssh-rsa ')
        assert "ListenAddress 127.0.4." in (tmp_path / "ssh" / node / "sshd_config").read_text()
    hardened = prepare_ssh(lab, s, {"ssh-host-key": Level.HARDENED})
    assert hardened == [*flags, f"--ssh-known-hosts={tmp_path / 'ssh' / 'known_hosts'}"]
    lines = (tmp_path / "ssh" / "known_hosts").read_text().splitlines()
    for line, (node, ip) in zip(lines, (("node1", "127.0.4.2"), ("node2", "127.0.4.3")), strict=True):
        host_key = (tmp_path / "ssh" / node / "ssh_host_ed25519_key.pub").read_text().split()
        assert line.split() == [ip if port == 22 else f"[{ip}]:{port}", *host_key[:2]]
    apiserver = commands.apiserver(lab, s.settings, resolve("insecure"), hardened)
    assert apiserver[-len(hardened):] == hardened


def test_konnectivity_mode_writes_the_egress_config_and_keeps_its_ca(tmp_path: Path) -> None:
    lab = LabDir(tmp_path)
    pki, flags = prepare_konnectivity(lab, state("konnectivity"))
    config = tmp_path / "egress-selector-configuration.yaml"
    assert flags == ["--egress-selector-config-file", str(config)]
    assert f"udsName: {pki.socket}" in config.read_text()
    ca = (tmp_path / "konnectivity" / "ca.crt").read_bytes()
    konnectivity_pki(tmp_path, ["node1", "node2", "node3"])  # a node joins the running lab
    assert (tmp_path / "konnectivity" / "ca.crt").read_bytes() == ca  # the running server's CA stays
    assert (tmp_path / "konnectivity" / "agent-node3.crt").exists()


def test_established_counts_connections_to_an_address() -> None:
    with socket.create_server(("127.0.4.9", 0)) as server:
        port = server.getsockname()[1]
        assert established("127.0.4.9", port) == 0
        with socket.create_connection(("127.0.4.9", port)), server.accept()[0]:
            assert established("127.0.4.9", port) == 1
