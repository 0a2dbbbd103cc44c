"""The profile table and the command lines built from it: the insecure column IS the components' flag
defaults, the hardened column is what their config files / kubeadm would set, and --set changes one path."""

from __future__ import annotations

from pathlib import Path

import pytest

from miniapi.config import from_args as apiserver_config
from minikubelet.config import from_args as kubelet_config
from minilab import commands
from minilab.lab import _next_ip
from minilab.profiles import BY_NAME, PATHS, Component, Level, ProfileError, flags_for, render, resolve
from minilab.state import LabDir, LabState, NodeSpec, ProcInfo, Settings
from minilab.waits import LabError
from pki.init import init_pki

NODE = NodeSpec("node1", "127.0.0.2")
JOINED = NodeSpec("node3", "127.0.0.4", joined=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> LabDir:
    lab = LabDir(tmp_path_factory.mktemp("lab"))
    init_pki(lab.root, apiserver_url="https://127.0.0.1:6443", nodes=["node1"], node_ips={"node1": "127.0.0.2"},
             key_type="ec")
    return lab


def without(argv: list[str], flags: list[str]) -> list[str]:
    return [a for a in argv if a not in flags]


@pytest.mark.parametrize("profile", ["insecure", "hardened"])
def test_a_profile_sets_every_path_to_its_level(profile: str) -> None:
    assert resolve(profile) == {p.name: Level(profile) for p in PATHS}


def test_set_overrides_single_paths_and_takes_comma_lists() -> None:
    levels = resolve("hardened", ["kubelet-readonly=insecure,kubelet-authz=insecure", "apiserver-anonymous=insecure"])
    assert {n for n, lv in levels.items() if lv is Level.INSECURE} == {"kubelet-readonly", "kubelet-authz",
                                                                       "apiserver-anonymous"}


@pytest.mark.parametrize(("profile", "sets", "message"), [
    ("paranoid", [], "unknown profile 'paranoid'"),
    ("insecure", ["kubelet-authn"], "the value must be insecure or hardened"),
    ("insecure", ["nope=hardened"], "unknown path 'nope'"),
], ids=["bad-profile", "no-level", "bad-path"])
def test_bad_profiles_are_refused_with_what_to_use(profile: str, sets: list[str], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        resolve(profile, sets)


def test_every_row_cites_the_seed_page_and_renders() -> None:
    assert all(p.seed and p.why for p in PATHS)
    table = render(resolve("insecure"))
    assert all(p.name in table for p in PATHS) and "[insecure]" in table


def test_the_insecure_kubelet_flags_are_the_kubelets_flag_defaults(lab: LabDir) -> None:
    argv = commands.kubelet(lab, NODE, resolve("insecure"))[3:]
    profile = flags_for(Component.KUBELET, resolve("insecure"), read_only_port="10255")
    assert profile and all(f in argv for f in profile)
    fields = ("anonymous_auth", "authentication_token_webhook", "authorization_mode", "read_only_port",
              "client_ca_file", "tls_cert_file")
    with_flags, plain = kubelet_config(argv)[0], kubelet_config(without(argv, profile))[0]
    assert [getattr(with_flags, f) for f in fields] == [getattr(plain, f) for f in fields] == \
        [True, False, "AlwaysAllow", 10255, "", ""]


def test_the_hardened_kubelet_flags_are_the_config_file_defaults(lab: LabDir, tmp_path: Path) -> None:
    config = tmp_path / "kubelet.yaml"
    config.write_text('{"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration"}')
    cfg = kubelet_config(commands.kubelet(lab, NODE, resolve("hardened"))[3:])[0]
    file_defaults = kubelet_config(["--kubeconfig", "k", "--config", str(config)])[0]
    fields = ("anonymous_auth", "authentication_token_webhook", "authorization_mode", "read_only_port")
    assert [getattr(cfg, f) for f in fields] == [getattr(file_defaults, f) for f in fields]
    assert (cfg.client_ca_file, cfg.tls_cert_file) == (str(lab.ca_crt), str(lab.root / "nodes/node1/pki/kubelet.crt"))


def test_a_joined_node_bootstraps_and_asks_for_its_serving_certificate_when_hardened(lab: LabDir) -> None:
    hardened = commands.kubelet(lab, JOINED, resolve("hardened"))
    assert "--rotate-server-certificates" in hardened and not any("--tls-cert-file" in a for a in hardened)
    assert hardened[hardened.index("--bootstrap-kubeconfig") + 1] == str(lab.root / "bootstrap-kubelet.conf")
    assert hardened[hardened.index("--kubeconfig") + 1] == str(lab.root / "kubelet/node3/kubelet.conf")
    assert "--rotate-server-certificates" not in commands.kubelet(lab, JOINED, resolve("insecure"))


@pytest.mark.parametrize("profile", ["insecure", "hardened"])
def test_the_apiserver_flags_parse_and_keep_node_rbac_in_both_profiles(lab: LabDir, profile: str) -> None:
    argv = commands.apiserver(lab, Settings(), resolve(profile))[3:]
    cfg = apiserver_config(argv)[0]
    assert cfg.authorization_mode == ("Node", "RBAC") and cfg.data_dir == str(lab.data)
    hardened = profile == "hardened"
    assert cfg.anonymous_auth is not hardened
    assert cfg.kubelet_certificate_authority == (str(lab.ca_crt) if hardened else "")
    if not hardened:
        plain = apiserver_config(without(argv, flags_for(Component.APISERVER, resolve("insecure"))))[0]
        assert (plain.anonymous_auth, plain.kubelet_certificate_authority) == (True, "")


def test_the_controller_manager_gives_loopback_pod_cidrs(lab: LabDir) -> None:
    argv = commands.controller_manager(lab, Settings())
    assert argv[argv.index("--cluster-cidr") + 1] == "127.244.0.0/16" and "--allocate-node-cidrs=true" in argv


def test_node_addresses_stay_on_loopback() -> None:
    assert _next_ip("127.0.0.2", ["127.0.0.2", "127.0.0.3"]) == "127.0.0.4"
    with pytest.raises(LabError, match="not a loopback address"):
        _next_ip("127.255.255.255", ["127.255.255.255"])


def test_lab_json_round_trips(tmp_path: Path) -> None:
    lab = LabDir(tmp_path)
    state = LabState(Settings(port=7443, profile="hardened", overrides=("kubelet-readonly=insecure",)),
                     [NODE, JOINED], {"apiserver": ProcInfo(42, 7, "https://127.0.0.1:7443", "a.log", ("x", "y"))})
    lab.save(state)
    assert lab.load() == state
    assert BY_NAME["kubelet-readonly"].flags(Level.HARDENED) == ("--read-only-port=0",)
