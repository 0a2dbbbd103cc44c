"""A node's SSH server for the historical apiserver SSH tunnels: the real OpenSSH ``sshd``, port forwarding only.

The apiserver (``--ssh-user``/``--ssh-keyfile``, :mod:`miniapi.proxy.ssh`) keeps one SSH connection per
node and opens ``direct-tcpip`` channels through it. On the node that takes, in ``DIR``::

    ssh_host_ed25519_key(.pub)  the node's own host key (ssh-keygen); rotate_host_key() makes a new one
    authorized_keys             the apiserver's public key as ``restrict,port-forwarding,command="/bin/false" ...``
                                (the real feature pushed it through the cloud provider,
                                AddSSHKeyToAllInstances; the lab writes the file: :meth:`NodeSSHD.authorize`)
    sshd_config                 below; sshd.log; sshd.pid

The configuration allows the tunnel user nothing but local port forwarding::

    ListenAddress 127.0.0.2:22            the node's own loopback address (a port per node is not needed)
    HostKey DIR/ssh_host_ed25519_key
    AuthorizedKeysFile DIR/authorized_keys
    AllowUsers <user>                     everyone else is refused before authentication
    PubkeyAuthentication yes              PasswordAuthentication no, KbdInteractiveAuthentication no
    AllowTcpForwarding local              direct-tcpip only: no listener on the node (-R)
    PermitTTY no, X11Forwarding no, AllowAgentForwarding no, AllowStreamLocalForwarding no, PermitTunnel no
    ForceCommand /bin/false               a session channel runs nothing
    StrictModes no                        the lab's directories live under /tmp
    UsePAM no

``sshd`` must run as root to listen on port 22 (and it needs ``/run/sshd``, its privilege separation
directory); unprivileged, it serves a high port and only the user it runs as. Install it with
``apt-get install -y openssh-server`` (``scripts/test.sh`` does when it may).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "ssh-keygen"


class SSHDError(RuntimeError):
    """sshd is missing or did not come up."""


def sshd_binary() -> str | None:
    found = SSHD if os.access(SSHD, os.X_OK) else shutil.which("sshd")
    return found or None


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_ssh_port(hosts: list[str], first: int = 22) -> int:
    """22 if every node address can take it (root, nothing else on it), else one high port free on all."""
    if all(port_free(h, first) for h in hosts):
        return first
    for _ in range(100):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = int(s.getsockname()[1])
        if all(port_free(h, port) for h in hosts):
            return port
    raise SSHDError(f"no port free on all of {hosts}")


def authorized_key_line(public_key: str) -> str:
    """The authorized_keys line for the tunnel key: forwarding only, no command, no pty."""
    return f'restrict,port-forwarding,command="/bin/false" {public_key.strip()}\n'


def config_text(d: Path, address: str, port: int, user: str) -> str:
    lines = [f"ListenAddress {address}:{port}", f"HostKey {d / 'ssh_host_ed25519_key'}",
             f"AuthorizedKeysFile {d / 'authorized_keys'}", f"PidFile {d / 'sshd.pid'}", f"AllowUsers {user}",
             "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
             "PermitRootLogin prohibit-password", "AllowTcpForwarding local", "PermitTTY no",
             "X11Forwarding no", "AllowAgentForwarding no", "AllowStreamLocalForwarding no", "PermitTunnel no",
             "GatewayPorts no", "ForceCommand /bin/false", "StrictModes no", "UsePAM no", "PrintMotd no",
             "LogLevel VERBOSE", "MaxStartups 100:30:200"]
    return "\n".join(lines) + "\n"


@dataclass
class NodeSSHD:
    """One node's sshd: files in ``dir``, listening on ``address:port``, letting ``user`` forward ports."""

    dir: Path
    address: str
    port: int
    user: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host_key(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    @property
    def log(self) -> Path:
        return self.dir / "sshd.log"

    def prepare(self) -> NodeSSHD:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.host_key.exists():
            self.rotate_host_key()
        (self.dir / "sshd_config").write_text(config_text(self.dir, self.address, self.port, self.user))
        (self.dir / "authorized_keys").touch(mode=0o600)
        return self

    def rotate_host_key(self) -> str:
        """A new host key (what a reinstalled or impersonated node presents); returns its public line."""
        for p in (self.host_key, self.host_key.with_suffix(".pub")):
            p.unlink(missing_ok=True)
        subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", f"root@{self.address}",
                        "-f", str(self.host_key)], check=True, capture_output=True)
        return self.host_key.with_suffix(".pub").read_text()

    def authorize(self, public_key: str) -> None:
        """Install the apiserver's public key (OpenSSH one-line format) for the tunnel user."""
        path = self.dir / "authorized_keys"
        path.write_text(authorized_key_line(public_key))
        path.chmod(0o600)

    def start(self, timeout: float = 10.0) -> NodeSSHD:
        binary = sshd_binary()
        if binary is None:
            raise SSHDError("sshd not found: apt-get install -y openssh-server")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([binary, "-D", "-e", "-f", str(self.dir / "sshd_config")],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SSHDError(f"sshd exited {self.proc.returncode}: {self.log_text()}")
            with contextlib.suppress(OSError), socket.create_connection((self.address, self.port), 0.5) as s:
                s.settimeout(2)
                if s.recv(64).startswith(b"SSH-2.0-"):
                    return self
            time.sleep(0.02)
        raise SSHDError(f"sshd on {self.address}:{self.port} not up after {timeout}s: {self.log_text()}")

    def stop(self, connections: bool = True) -> None:
        """Stop the listening sshd and, unless told otherwise, every connection it serves.

        ``systemctl restart ssh`` keeps established connections (each lives in its own sshd child, in
        its own session); a node reboot ends them. ``connections=True`` is the reboot."""
        if self.proc is None:
            return
        children = descendant_pids(self.proc.pid) if connections else []
        for pid in [self.proc.pid, *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL if pid in children else signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, connections: bool = True) -> NodeSSHD:
        self.stop(connections)
        return self.start()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def descendant_pids(pid: int) -> list[int]:
    """Every process below ``pid`` (sshd's per-connection children call setsid, so no process group)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
