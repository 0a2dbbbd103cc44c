"""pods/log's pure parts: the query codec, ValidatePodLogOptions, container choice, the kubelet URL, and
the generic response checker's Status texts."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict

from miniapi.endpoints.podlog import PodLogOptions, choose_container, kubelet_target, parse_options, validate
from miniapi.errors import ApiError
from miniapi.proxy.errors import response_error


def opts(**query: str) -> PodLogOptions:
    return parse_options(MultiDict(query))


def test_kubectl_queries_become_the_kubelet_url_with_sorted_keys() -> None:
    o = opts(container="c1", follow="true", limitBytes="100", sinceSeconds="10", timestamps="true", tailLines="2")
    assert kubelet_target("default", "p1", "c1", o) == \
        "/containerLogs/default/p1/c1?follow=true&limitBytes=100&sinceSeconds=10&tailLines=2&timestamps=true"
    assert kubelet_target("default", "p1", "c1", opts()) == "/containerLogs/default/p1/c1"


def test_since_time_is_rfc3339_seconds_in_utc() -> None:
    o = opts(sinceTime="2026-01-02T03:04:05.999+02:00", previous="1", stream="Stderr")
    assert o.since_time == dt.datetime(2026, 1, 2, 1, 4, 5, 999000, tzinfo=dt.UTC)
    assert kubelet_target("ns", "p", "c", o) == \
        "/containerLogs/ns/p/c?previous=true&sinceTime=2026-01-02T01%3A04%3A05Z&stream=Stderr"


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("", True), ("yes", True), ("0", False),
                                                 ("False", False), ("FALSE", False)])
def test_booleans_are_false_only_for_0_and_false(value: str, expected: bool) -> None:
    assert opts(follow=value).follow is expected


@pytest.mark.parametrize(("query", "message"), [
    ({"tailLines": "x"}, 'strconv.ParseInt: parsing "x": invalid syntax'),
    ({"limitBytes": " 5"}, 'strconv.ParseInt: parsing " 5": invalid syntax'),
    ({"sinceSeconds": "99999999999999999999"}, 'strconv.ParseInt: parsing "99999999999999999999": value out of '
                                               'range'),
    ({"sinceTime": "yesterday"}, 'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse '
                                 '"yesterday" as "2006"'),
], ids=["tail", "space", "range", "time"])
def test_undecodable_queries_are_400(query: dict[str, str], message: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_options(MultiDict(query))
    assert (info.value.code, info.value.reason, info.value.message) == (400, "BadRequest", message)


@pytest.mark.parametrize(("query", "message"), [
    ({"tailLines": "-1"}, 'PodLogOptions "p" is invalid: tailLines: Invalid value: -1: must be greater than or '
                          'equal to 0'),
    ({"limitBytes": "0"}, 'PodLogOptions "p" is invalid: limitBytes: Invalid value: 0: must be greater than 0'),
    ({"sinceSeconds": "0"}, 'PodLogOptions "p" is invalid: sinceSeconds: Invalid value: 0: must be greater than 0'),
    ({"sinceSeconds": "5", "sinceTime": "2026-01-01T00:00:00Z"},
     'PodLogOptions "p" is invalid: : Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified'),
    ({"stream": "Both"}, 'PodLogOptions "p" is invalid: stream: Unsupported value: "Both": supported values: '
                         '"All", "Stderr", "Stdout"'),
    ({"stream": "Stdout", "tailLines": "1", "limitBytes": "-2"},
     'PodLogOptions "p" is invalid: [limitBytes: Invalid value: -2: must be greater than 0, : Forbidden: '
     '`tailLines` and specific `stream` are mutually exclusive for now]'),
], ids=["tail", "limit", "since", "both-since", "stream", "two"])
def test_invalid_options_are_422_like_the_registry(query: dict[str, str], message: str) -> None:
    with pytest.raises(ApiError) as info:
        validate(parse_options(MultiDict(query)), "p")
    assert (info.value.code, info.value.reason, info.value.message) == (422, "Invalid", message)
    assert info.value.details["kind"] == "PodLogOptions"


POD = {"metadata": {"name": "p"}, "spec": {"initContainers": [{"name": "init"}],
                                           "containers": [{"name": "a"}, {"name": "b"}]}}


def test_container_choice() -> None:
    assert choose_container(POD, "init") == "init"
    one = {"metadata": {"name": "q"}, "spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "only"}]}}
    assert choose_container(one, "") == "only"
    with pytest.raises(ApiError, match=r"^400 BadRequest: a container name must be specified for pod p, choose one "
                                       r"of: \[init a b\]$"):
        choose_container(POD, "")
    with pytest.raises(ApiError, match="^400 BadRequest: container c9 is not valid for pod p$"):
        choose_container(POD, "c9")


@pytest.mark.parametrize(("code", "body", "reason", "message"), [
    (404, b'container "c9" not found in pod "p"', "NotFound",
     "the server could not find the requested resource ( pods/log p)"),
    (401, b"Unauthorized", "Unauthorized", "the server has asked for the client to provide credentials ( pods/log p)"),
    (403, b"Forbidden (user=system:anonymous, verb=get, resource=nodes, subresource=proxy)", "Forbidden",
     "Forbidden (user=system:anonymous, verb=get, resource=nodes, subresource=proxy) ( pods/log p)"),
    (400, b'container "c1" in pod "p" is waiting to start: ContainerCreating', "BadRequest",
     'container "c1" in pod "p" is waiting to start: ContainerCreating'),
    (500, b"boom", "InternalError", "Internal error occurred: boom"),
    (502, b"bad gw", "InternalError",
     'an error on the server ("bad gw") has prevented the request from succeeding ( pods/log p)'),
    (302, b"", "", "the server responded with the status code 302 but did not return more information ( pods/log p)"),
    (422, b'{"message":"x"}', "Invalid",
     "the server rejected our request due to an error in our request ( pods/log p)"),
])
def test_kubelet_error_replies_become_the_real_status(code: int, body: bytes, reason: str, message: str) -> None:
    err = response_error(code, body, "pods/log", "p")
    assert (err.code, err.reason, err.message) == (code, reason, message)


@given(st.dictionaries(st.sampled_from(["follow", "previous", "timestamps", "tailLines", "limitBytes",
                                         "sinceSeconds", "sinceTime", "stream", "container", "x"]),
                       st.text(max_size=12)))
def test_any_query_decodes_or_is_a_400_or_422(query: dict[str, str]) -> None:
    try:
        o = parse_options(MultiDict(query))
        validate(o, "p")
    except ApiError as exc:
        assert exc.code in (400, 422)
        return
    target = kubelet_target("ns", "p", "c", o)
    assert target.startswith("/containerLogs/ns/p/c") and "\n" not in target and " " not in target
