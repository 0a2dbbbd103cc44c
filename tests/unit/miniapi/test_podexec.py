"""pods/exec and pods/attach before the upgrade: the query codec, the pod checks, the kubelet URL."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict

from miniapi.endpoints.podexec import StreamOptions, check_pod, kubelet_target, parse_options
from miniapi.errors import ApiError


def q(*pairs: tuple[str, str]) -> MultiDict[str]:
    return MultiDict(pairs)


def test_query_as_kubectl_and_the_python_client_send_it() -> None:
    kubectl = q(("command", "sh"), ("command", "-c"), ("command", "exit 3"), ("container", "c1"), ("stderr", "true"),
                ("stdout", "true"), ("stdin", "true"), ("tty", "true"))
    assert parse_options(kubectl, "exec") == StreamOptions("c1", ("sh", "-c", "exit 3"), True, True, True, True)
    python = q(("command", "ls"), ("stderr", "True"), ("stdin", "False"), ("stdout", "True"), ("tty", "False"))
    assert parse_options(python, "exec") == StreamOptions("", ("ls",), False, True, True, False)
    assert parse_options(q(("command", "ignored"), ("stdout", "1")), "attach").command == ()


@pytest.mark.parametrize(("query", "kind", "message"), [
    (q(("command", "x"), ("stdout", "true"), ("tty", "maybe")), "exec",
     'strconv.ParseBool: parsing "maybe": invalid syntax'),
    (q(("stdout", "true")), "exec", "you must specify at least one command for the container"),
    (q(("command", "x")), "exec", "you must specify at least 1 of stdin, stdout, stderr"),
    (q(("stdin", "false")), "attach", "you must specify at least 1 of stdin, stdout, stderr"),
], ids=["bad-bool", "no-command", "no-stream", "attach-no-stream"])
def test_malformed_queries_are_400(query: MultiDict[str], kind: str, message: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_options(query, kind)
    assert (info.value.code, info.value.reason, info.value.message) == (400, "BadRequest", message)


def test_kubelet_url_uses_its_names_sorted_like_go() -> None:
    opts = StreamOptions("c1", ("sh", "-c", "echo a b&c"), stdin=True, stdout=True, stderr=True, tty=True)
    assert kubelet_target("exec", "default", "p", "c1", opts) == \
        "/exec/default/p/c1?command=sh&command=-c&command=echo+a+b%26c&input=1&output=1&tty=1"  # tty drops stderr
    assert kubelet_target("attach", "ns", "p", "c/x", StreamOptions(stdout=True, stderr=True)) == \
        "/attach/ns/p/c%2Fx?error=1&output=1"


def pod(phase: str = "Running", node: str = "node1", containers: tuple[str, ...] = ("c1",)) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"nodeName": node, "containers": [{"name": c} for c in containers]},
            "status": {"phase": phase}}


@pytest.mark.parametrize(("doc", "kind", "container", "message"), [
    (pod("Succeeded"), "exec", "", "cannot exec into a container in a completed pod; current phase is Succeeded"),
    (pod("Failed"), "attach", "", "cannot attach a container in a completed pod; current phase is Failed"),
    (pod(containers=("a", "b")), "exec", "", "a container name must be specified for pod p, choose one of: [a b]"),
    (pod(), "exec", "c9", "container c9 is not valid for pod p"),
    (pod(node=""), "exec", "", "pod p does not have a host assigned"),
], ids=["succeeded", "failed-attach", "two-containers", "unknown-container", "unscheduled"])
def test_pod_checks(doc: dict[str, Any], kind: str, container: str, message: str) -> None:
    with pytest.raises(ApiError) as info:
        check_pod(doc, kind, StreamOptions(container=container, stdout=True))
    assert (info.value.code, info.value.message) == (400, message)


def test_pod_checks_default_the_only_container() -> None:
    assert check_pod(pod(), "exec", StreamOptions(stdout=True)) == ("c1", "node1")


@given(st.lists(st.tuples(st.sampled_from(["command", "container", "stdin", "stdout", "stderr", "tty", "x"]),
                          st.text(max_size=8)), max_size=8))
def test_any_query_parses_or_is_a_400(pairs: list[tuple[str, str]]) -> None:
    for kind in ("exec", "attach"):
        try:
            opts = parse_options(MultiDict(pairs), kind)
        except ApiError as exc:
            assert exc.code == 400
            continue
        assert opts.stdin or opts.stdout or opts.stderr
        assert kubelet_target(kind, "ns", "p", "c", opts).startswith(f"/{kind}/ns/p/c?")
