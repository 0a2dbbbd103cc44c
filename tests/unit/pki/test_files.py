"""files.py: atomic writes with exact modes, and kubeadm's names for every file."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pki import files
from pki.errors import PkiError
from pki.files import PRIVATE_MODE, PUBLIC_MODE, Layout, write_atomic, write_cert, write_key

from .conftest import CA


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o077, 0o000], ids=["umask-022", "umask-077", "umask-000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_modes_are_exact_whatever_the_umask(tmp_path: Path, ec_ca: CA, umask: int) -> None:
    write_key(tmp_path / "pki" / "ca.key", ec_ca[1])
    write_cert(tmp_path / "pki" / "ca.crt", ec_ca[0])
    assert _mode(tmp_path / "pki" / "ca.key") == PRIVATE_MODE == 0o600
    assert _mode(tmp_path / "pki" / "ca.crt") == PUBLIC_MODE == 0o644


def test_overwrite_tightens_mode_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_text("old")
    target.chmod(0o666)
    write_atomic(target, b"new", PRIVATE_MODE)
    assert target.read_bytes() == b"new" and _mode(target) == 0o600
    assert os.listdir(tmp_path) == ["secret"]


@pytest.mark.parametrize("fail_at", ["replace", "fsync", "write"])
def test_a_failed_write_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: str
) -> None:
    target = tmp_path / "ca.key"
    target.write_bytes(b"old key")

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(f"simulated {fail_at} failure")

    if fail_at == "write":
        monkeypatch.setattr(files.os, "fchmod", boom)
    else:
        monkeypatch.setattr(files.os, fail_at, boom)
    with pytest.raises(OSError, match="simulated"):
        write_atomic(target, b"new key", PRIVATE_MODE)
    assert target.read_bytes() == b"old key"
    assert os.listdir(tmp_path) == ["ca.key"]


def test_the_temp_file_lives_beside_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """os.replace is only atomic within one filesystem, so the temp file must share the directory."""
    seen: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        seen.append((os.path.dirname(src), os.path.dirname(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", spy)
    write_atomic(tmp_path / "a" / "b.crt", b"x", PUBLIC_MODE)
    assert seen == [(str(tmp_path / "a"), str(tmp_path / "a"))]


def test_layout_uses_kubeadm_names(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    node = layout.node("node1")
    names = [
        layout.ca_crt,
        layout.ca_key,
        layout.pki("apiserver.crt"),
        layout.sa_key,
        layout.sa_pub,
        layout.admin_conf,
        layout.controller_manager_conf,
        layout.bootstrap_kubelet_conf,
        layout.bootstrap_token,
        layout.tokens_csv,
        node.kubelet_conf,
        node.ca_crt,
        node.kubelet_client_pem,
        node.kubelet_crt,
        node.kubelet_key,
    ]
    assert [str(p.relative_to(tmp_path)) for p in names] == [
        "pki/ca.crt",
        "pki/ca.key",
        "pki/apiserver.crt",
        "pki/sa.key",
        "pki/sa.pub",
        "admin.conf",
        "controller-manager.conf",
        "bootstrap-kubelet.conf",
        "bootstrap-token",
        "tokens.csv",
        "nodes/node1/kubelet.conf",
        "nodes/node1/pki/ca.crt",
        "nodes/node1/pki/kubelet-client-current.pem",
        "nodes/node1/pki/kubelet.crt",
        "nodes/node1/pki/kubelet.key",
    ]


@pytest.mark.parametrize("name", ["", "../etc", "a/b", ".hidden"])
def test_node_names_cannot_escape_the_directory(tmp_path: Path, name: str) -> None:
    with pytest.raises(PkiError, match="invalid node name"):
        Layout(tmp_path).node(name)
