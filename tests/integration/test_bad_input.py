"""Bad input against a real in-process apiserver over TLS: every answer is a Kubernetes Status with the
code a real cluster gives, nothing hangs, nothing is a 500, and nothing already stored is lost.

One server (and its seed objects) is shared by the module; every case re-reads the seeds afterwards,
byte for byte, resourceVersion included, so a case that wrote something it should not have fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miniapi.resources import RESOURCES
from miniapi.store import MemoryStore
from tests.integration.conftest import Pki, Reply, ServerThread, parse_raw

NS = "bad"
CMS = f"/api/v1/namespaces/{NS}/configmaps"
KEEP = f"{CMS}/keep"
PROTOBUF = "application/vnd.kubernetes.protobuf"
SEED_PATHS = (f"/api/v1/namespaces/{NS}", KEEP, f"/api/v1/namespaces/{NS}/secrets/keep-secret",
              f"/api/v1/namespaces/{NS}/pods/keep-pod", "/api/v1/namespaces/default")


@dataclass
class Seeded:
    st: ServerThread
    snapshot: dict[str, Any]

    def assert_intact(self) -> None:
        for path in SEED_PATHS:
            reply = self.st.call("GET", path)
            assert reply.status == 200, (path, reply.body)
            assert reply.json == self.snapshot[path], path


@pytest.fixture(scope="module")
def seeded(pki: Pki) -> Iterator[Seeded]:
    with ServerThread(pki.config(), pki) as server:
        for path, body in (
            ("/api/v1/namespaces", {"metadata": {"name": NS}}),
            # no controller-manager in-process: make the ServiceAccount pod admission looks up
            (f"/api/v1/namespaces/{NS}/serviceaccounts", {"metadata": {"name": "default"}}),
            (CMS, {"metadata": {"name": "keep", "labels": {"app": "keep"}}, "data": {"k": "v"}}),
            (f"/api/v1/namespaces/{NS}/secrets", {"metadata": {"name": "keep-secret"},
                                                  "stringData": {"password": "hunter2"}}),
            (f"/api/v1/namespaces/{NS}/pods", {"metadata": {"name": "keep-pod"}, "spec": {
                "containers": [{"name": "c", "image": "busybox"}]}}),
        ):
            reply = server.call("POST", path, body)
            assert reply.status == 201, reply.body
        snapshot = {path: server.call("GET", path).json for path in SEED_PATHS}
        seeds = Seeded(server, snapshot)
        yield seeds
        seeds.assert_intact()


def check(reply: Reply, code: int, reason: str, message: str = "") -> dict[str, Any]:
    assert reply.status == code, reply.body
    assert reply.is_status(), reply.body
    status = reply.json
    assert status["status"] == "Failure" and status["reason"] == reason, status
    assert message in status["message"], status["message"]
    return status


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    body: Any = None
    content_type: str | None = None
    code: int = 400
    reason: str = "BadRequest"
    message: str = ""
    raw: bool = False


def c(id: str, *args: Any, **kw: Any) -> Any:
    return pytest.param(Case(*args, **kw), id=id)


BODIES = [
    c("malformed-json", "POST", CMS, b'{"metadata": {', "application/json", message="invalid JSON"),
    c("json-array", "POST", CMS, b"[1, 2]", "application/json", message="must be a JSON object"),
    c("json-string", "POST", CMS, b'"configmap"', "application/json", message="must be a JSON object"),
    c("json-null", "POST", CMS, b"null", "application/json", message="must be a JSON object"),
    c("empty-body", "POST", CMS, b"", "application/json", message="empty body"),
    c("not-utf8", "POST", CMS, b'{"a": "\xff\xfe"}', "application/json", message="invalid JSON"),
    c("yaml-broken", "POST", CMS, b"metadata: [", "application/yaml", message="error converting YAML"),
    c("yaml-list", "POST", CMS, b"- a\n- b\n", "application/yaml", message="must be a JSON object"),
    c("wrong-kind", "POST", CMS, {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "x"}},
      message='ConfigMap in version "v1" cannot be handled as a Pod'),
    c("wrong-apiversion", "POST", CMS, {"kind": "ConfigMap", "apiVersion": "v2", "metadata": {"name": "x"}},
      message="does not match the expected API version (v1)"),
    c("namespace-mismatch", "POST", CMS, {"metadata": {"name": "x", "namespace": "default"}},
      message="does not match the namespace sent on the request"),
    c("name-mismatch", "PUT", KEEP, {"metadata": {"name": "other"}},
      message="the name of the object (other) does not match the name on the URL (keep)"),
    c("name-missing-on-put", "PUT", KEEP, {"metadata": {}}, message="(keep based on URL) was undeterminable"),
    c("metadata-string", "POST", CMS, {"metadata": "keep"},
      message="cannot unmarshal string into Go struct field ConfigMap.metadata of type v1.ObjectMeta"),
    c("metadata-list", "POST", CMS, {"metadata": [1]}, message="cannot unmarshal array"),
    c("name-number", "POST", CMS, {"metadata": {"name": 5}},
      message="cannot unmarshal number into Go struct field ObjectMeta.metadata.name of type string"),
    c("labels-int-values", "POST", CMS, {"metadata": {"name": "x", "labels": {"a": 1}}},
      message="ObjectMeta.metadata.labels of type string"),
    c("labels-list", "POST", CMS, {"metadata": {"name": "x", "labels": ["a"]}},
      message="of type map[string]string"),
    c("annotations-bool", "POST", CMS, {"metadata": {"name": "x", "annotations": {"a": True}}},
      message="cannot unmarshal bool"),
    c("finalizers-string", "POST", CMS, {"metadata": {"name": "x", "finalizers": "x"}}, message="[]string"),
    c("pod-spec-string", "POST", f"/api/v1/namespaces/{NS}/pods", {"metadata": {"name": "x"}, "spec": "x"},
      message="Go struct field Pod.spec of type v1.PodSpec"),
    c("namespace-spec-string", "POST", "/api/v1/namespaces", {"metadata": {"name": "x"}, "spec": "x"},
      message="Namespace.spec"),
    c("node-status-string", "POST", "/api/v1/nodes", {"metadata": {"name": "x"}, "status": "x"},
      message="Node.status"),
    c("service-clusterip-junk", "POST", f"/api/v1/namespaces/{NS}/services",
      {"metadata": {"name": "x"}, "spec": {"clusterIP": "not-an-ip", "ports": [{"port": 80}]}},
      code=422, reason="Invalid", message="must be a valid IP address"),
    c("pod-without-containers", "POST", f"/api/v1/namespaces/{NS}/pods", {"metadata": {"name": "x"},
      "spec": {}}, code=422, reason="Invalid", message="spec.containers: Required value"),
    c("protobuf-garbage", "POST", CMS, b"\x00\x01garbage\xff", PROTOBUF, message="expected prefix"),
    c("protobuf-magic-then-garbage", "POST", CMS, b"k8s\x00\xff\xff\xff\xff", PROTOBUF,
      message="not valid protobuf"),
    c("protobuf-truncated", "POST", CMS, b"k8s\x00\x0a\x10\x0a\x02v1", PROTOBUF, message="not valid protobuf"),
    c("unknown-content-type", "POST", CMS, b"<p>hi</p>", "text/html", code=415,
      reason="UnsupportedMediaType", message="unknown format"),
    c("dry-run-typo", "POST", CMS + "?dryRun=Al", {"metadata": {"name": "dry"}}, code=422,
      reason="Invalid", message='dryRun: Unsupported value: []string{"Al"}'),
    c("delete-options-array", "DELETE", KEEP, b"[1]", "application/json", message="must be a JSON object"),
    c("delete-options-bad-preconditions", "DELETE", KEEP, {"preconditions": "x"},
      message="DeleteOptions.preconditions of type v1.Preconditions"),
    c("delete-options-grace-string", "DELETE", KEEP, {"gracePeriodSeconds": "now"},
      message="DeleteOptions.gracePeriodSeconds of type int64"),
    c("delete-options-dryrun-string", "DELETE", KEEP, {"dryRun": "All"}, message="[]string"),
    c("delete-precondition-uid", "DELETE", KEEP, {"preconditions": {"uid": "not-the-uid"}}, code=409,
      reason="Conflict", message="Precondition failed: UID in precondition: not-the-uid"),
    c("sar-extra-not-lists", "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
      {"spec": {"user": "a", "extra": {"k": 5}, "resourceAttributes": {"verb": "get"}}},
      message="cannot be handled as a SubjectAccessReview"),
    c("token-request-spec-string", "POST", f"/api/v1/namespaces/{NS}/serviceaccounts/default/token",
      {"spec": "x"}, message="spec must be an object"),
]

PATCHES = [
    c("json-patch-not-a-list", "PATCH", KEEP, {"op": "add"}, "application/json-patch+json",
      message="must be a list of operations"),
    c("json-patch-unknown-op", "PATCH", KEEP, [{"op": "bogus", "path": "/data"}],
      "application/json-patch+json", message='unexpected json patch operation "bogus"'),
    c("json-patch-not-a-pointer", "PATCH", KEEP, [{"op": "add", "path": "data/x", "value": "y"}],
      "application/json-patch+json", message="is not a JSON pointer"),
    c("json-patch-missing-path", "PATCH", KEEP, [{"op": "remove", "path": "/nope/x"}],
      "application/json-patch+json", code=422, reason="Invalid", message="doc is missing path"),
    c("json-patch-failed-test", "PATCH", KEEP, [{"op": "test", "path": "/data/k", "value": "other"}],
      "application/json-patch+json", code=422, reason="Invalid", message="testing value /data/k failed"),
    c("json-patch-renames", "PATCH", KEEP, [{"op": "replace", "path": "/metadata/name", "value": "x"}],
      "application/json-patch+json", message="does not match the name on the URL"),
    c("merge-patch-malformed", "PATCH", KEEP, b"{", "application/merge-patch+json",
      message="error decoding patch"),
    c("merge-patch-array", "PATCH", KEEP, [1], "application/merge-patch+json", code=422, reason="Invalid",
      message="not a JSON object"),
    c("merge-patch-int-label", "PATCH", KEEP, {"metadata": {"labels": {"a": 1}}},
      "application/merge-patch+json", code=422, reason="Invalid", message="patch: Invalid value"),
    c("merge-patch-drops-name", "PATCH", KEEP, {"metadata": None}, "application/merge-patch+json",
      message="undeterminable"),
    c("strategic-array", "PATCH", KEEP, [1], "application/strategic-merge-patch+json",
      message="must be a JSON object"),
    c("strategic-bad-directive", "PATCH", KEEP, {"$patch": "explode"}, "application/strategic-merge-patch+json",
      message="unknown patch type: explode"),
    c("strategic-bad-retainkeys", "PATCH", KEEP, {"metadata": {"$retainKeys": 5}},
      "application/strategic-merge-patch+json", message="$retainKeys must be a list"),
    c("strategic-bad-order", "PATCH", KEEP, {"$setElementOrder/data": 5},
      "application/strategic-merge-patch+json", message="must be a list"),
    c("apply-broken-yaml", "PATCH", KEEP, b"a: [", "application/apply-patch+yaml", message="YAML"),
    c("apply-list", "PATCH", KEEP, b"[1]", "application/apply-patch+yaml", message="must be a YAML"),
    c("patch-as-plain-json", "PATCH", KEEP, {"data": {}}, "application/json", code=415,
      reason="UnsupportedMediaType", message="application/merge-patch+json"),
    c("patch-without-content-type", "PATCH", KEEP, b'{"data": {}}', None, code=415,
      reason="UnsupportedMediaType"),
]

QUERIES = [
    c("label-selector-open-paren", "GET", CMS + "?labelSelector=a%20in%20(", message="unable to parse"),
    c("label-selector-bangs", "GET", CMS + "?labelSelector=!!!", message="unable to parse requirement"),
    c("label-selector-bad-key", "GET", CMS + "?labelSelector=-a=b", message="unable to parse requirement"),
    c("field-selector-unknown-field", "GET", CMS + "?fieldSelector=spec.x%3Dy",
      message="field label not supported: spec.x"),
    c("field-selector-no-operator", "GET", CMS + "?fieldSelector=metadata.name", message="invalid selector"),
    c("resource-version-word", "GET", CMS + "?resourceVersion=abc", message='resourceVersion: Invalid value'),
    c("resource-version-negative", "GET", CMS + "?resourceVersion=-1", message="resourceVersion"),
    c("resource-version-on-get", "GET", KEEP + "?resourceVersion=x1", message="resourceVersion"),
    c("resource-version-on-watch", "GET", CMS + "?watch=true&resourceVersion=abc", message="resourceVersion"),
    c("limit-word", "GET", CMS + "?limit=ten", message='invalid value for limit: "ten"'),
    c("limit-negative", "GET", CMS + "?limit=-1", message="must be greater than or equal to 0"),
    c("limit-overflow", "GET", CMS + "?limit=99999999999999999999", message="out of range"),
    c("continue-garbage", "GET", CMS + "?limit=1&continue=%%%", message="continue key is not valid"),
    c("continue-wrong-json", "GET", CMS + "?limit=1&continue=eyJ4IjoxfQ", message="continue key is not valid"),
    c("timeout-seconds-word", "GET", CMS + "?watch=true&timeoutSeconds=soon", message="timeoutSeconds"),
    c("timeout-seconds-negative", "GET", CMS + "?watch=true&timeoutSeconds=-5", message="timeoutSeconds"),
    c("timeout-seconds-overflow", "GET", CMS + "?watch=1&timeoutSeconds=99999999999999999999",
      message="out of range"),
    c("grace-period-word", "DELETE", KEEP + "?gracePeriodSeconds=now", message="gracePeriodSeconds"),
    c("dry-run-on-delete-typo", "DELETE", KEEP + "?dryRun=yes", code=422, reason="Invalid",
      message="DeleteOptions.meta.k8s.io"),
]

PATHS = [
    c("empty-namespace-segment", "GET", "/api/v1/namespaces//pods", code=404, reason="NotFound", raw=True),
    c("empty-name-segment", "DELETE", f"{CMS}//", code=404, reason="NotFound", raw=True),
    c("too-many-segments", "GET", f"/api/v1/namespaces/{NS}/pods/a/b/c/d", code=404, reason="NotFound"),
    c("unknown-group", "GET", "/apis/unknown.group/v1/things", code=404, reason="NotFound"),
    c("unknown-version", "GET", "/api/v2/pods", code=404, reason="NotFound"),
    c("unknown-resource", "GET", "/api/v1/things", code=404, reason="NotFound"),
    c("cluster-scoped-in-namespace", "GET", f"/api/v1/namespaces/{NS}/nodes", code=404, reason="NotFound"),
    c("dot-dot-name", "GET", f"{CMS}/%2e%2e", raw=True, message='Name parameter invalid: "..": may not be'),
    c("dot-dot-name-delete", "DELETE", f"{CMS}/%2e%2e", raw=True, message="Name parameter invalid"),
    c("dot-name", "PUT", f"{CMS}/%2E", {"metadata": {"name": "."}}, raw=True, message="may not be '.'"),
    c("dot-dot-namespace-create", "POST", "/api/v1/namespaces/%2e%2e/configmaps", {"metadata": {
        "name": "x"}}, raw=True, code=404, reason="NotFound", message='namespaces ".." not found'),
    c("dot-dot-subresource", "DELETE", f"{KEEP}/%2e%2e", raw=True, code=404, reason="NotFound"),
    c("dot-dot-after-name", "DELETE", f"{KEEP}/%2e%2e/%2e%2e", raw=True, code=404, reason="NotFound"),
    c("encoded-slash-in-name", "DELETE", f"{CMS}/keep%2Fstatus", raw=True, code=404, reason="NotFound"),
    c("encoded-slash-to-subresource", "DELETE", f"/api/v1/namespaces/{NS}/pods/keep-pod%2Fstatus", raw=True,
      code=405, reason="MethodNotAllowed"),
    c("unknown-subresource", "GET", f"{KEEP}/bogus", code=404, reason="NotFound"),
    c("status-of-configmap", "GET", f"{KEEP}/status", code=404, reason="NotFound"),
    c("long-name", "GET", f"{CMS}/{'x' * 9000}", code=404, reason="NotFound"),
    c("long-path", "GET", "/" + "a/" * 50_000, code=404, reason="NotFound"),
    c("put-collection", "PUT", CMS, {"metadata": {"name": "keep"}}, code=405, reason="MethodNotAllowed"),
    c("post-named-object", "POST", KEEP, {"metadata": {"name": "keep"}}, code=405, reason="MethodNotAllowed"),
    c("patch-collection", "PATCH", CMS, {"data": {}}, "application/merge-patch+json", code=405,
      reason="MethodNotAllowed"),
    c("get-token-subresource", "GET", f"/api/v1/namespaces/{NS}/serviceaccounts/default/token", code=405,
      reason="MethodNotAllowed"),
    c("delete-review", "DELETE", "/apis/authorization.k8s.io/v1/subjectaccessreviews", code=405,
      reason="MethodNotAllowed"),
    c("post-healthz", "POST", "/healthz", b"", code=405, reason="MethodNotAllowed"),
    c("post-unknown-nonresource", "POST", "/nope", b"", code=404, reason="NotFound"),
]


@pytest.mark.parametrize("case", BODIES + PATCHES + QUERIES + PATHS)
def test_bad_request_gets_a_status_and_loses_nothing(seeded: Seeded, case: Case) -> None:
    reply = seeded.st.call(case.method, case.path, case.body, content_type=case.content_type, raw=case.raw)
    check(reply, case.code, case.reason, case.message)
    seeded.assert_intact()


def test_huge_body_is_413(seeded: Seeded) -> None:
    body = {"metadata": {"name": "huge"}, "data": {"a": "x" * (3 * 1024 * 1024 + 1)}}
    check(seeded.st.call("POST", CMS, body), 413, "RequestEntityTooLarge",
          "Request entity too large: limit is 3145728")
    assert seeded.st.call("GET", f"{CMS}/huge").status == 404
    seeded.assert_intact()


def test_huge_chunked_body_is_413(seeded: Seeded) -> None:
    blob = b'{"metadata":{"name":"huge"},"data":{"a":"' + b"x" * (3 * 1024 * 1024 + 1) + b'"}}'
    request = (f"POST {CMS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    request += b"%x\r\n%s\r\n0\r\n\r\n" % (len(blob), blob)
    check(parse_raw(seeded.st.raw(request)), 413, "RequestEntityTooLarge")
    seeded.assert_intact()


def test_request_line_beyond_header_limit_is_refused(seeded: Seeded) -> None:
    """Past kube-apiserver's 1 MiB MaxHeaderBytes the HTTP layer refuses (Go: 431, aiohttp: 400)."""
    answer = seeded.st.raw(b"GET /" + b"a" * ((1 << 20) + 1) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert 400 <= parse_raw(answer).status < 500


@pytest.mark.parametrize("authorization, code", [
    (b"Bearer", 403),                   # no token after the scheme: not a bearer credential -> anonymous
    (b"Bearer ", 403),
    (b"Basic dXNlcjpwYXNz", 403),       # no basic auth in kube: not a credential -> anonymous
    (b"Bearer " + b"a" * 10_000, 401),
    (b"Bearer " + "ünïcødé".encode(), 401),
    (b"Bearer \xff\xfe\xfd", 401),
    (b"bearer abc", 401),               # the scheme is case-insensitive
    (b"Bearer abc def", 401),
    (b"Bearer abcdef.0123456789abcdef", 401),   # bootstrap-token shaped, no such Secret
    (b"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", 401),  # alg none JWT
], ids=["bearer-alone", "bearer-space", "basic", "bearer-10k", "bearer-utf8", "bearer-latin1",
        "bearer-lowercase", "bearer-two-words", "bootstrap-shape", "jwt-alg-none"])
def test_malformed_authorization_header(seeded: Seeded, authorization: bytes, code: int) -> None:
    request = (b"GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: "
               + authorization + b"\r\n\r\n")
    reply = parse_raw(seeded.st.raw(request, client_cert=False))
    if code == 401:
        check(reply, 401, "Unauthorized", "Unauthorized")
    else:  # real kube: the bearer authenticator says "not mine", anonymous is then forbidden
        check(reply, 403, "Forbidden", 'User "system:anonymous" cannot list resource "namespaces"')


def test_bad_token_beats_a_good_client_certificate(seeded: Seeded) -> None:
    """The union authenticator: the client certificate authenticates first, so the request succeeds."""
    request = (b"GET /api/v1/namespaces/default HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               b"Authorization: Bearer nonsense\r\n\r\n")
    assert parse_raw(seeded.st.raw(request, client_cert=True)).status == 200


def test_body_shorter_than_content_length_does_not_block_others(seeded: Seeded) -> None:
    """A client that never finishes its body only ties up its own connection."""
    request = (f"POST {CMS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: 100\r\n\r\n{").encode()

    async def stalled_then_other() -> int:
        import asyncio

        from tests.integration.conftest import raw_exchange

        stalled = asyncio.ensure_future(raw_exchange(seeded.st.server.port, seeded.st.pki.ssl(), request,
                                                     1 << 16))
        try:
            reply = await seeded.st.admin.call("GET", KEEP)
            return reply.status
        finally:
            stalled.cancel()

    assert seeded.st.run(stalled_then_other()) == 200
    seeded.assert_intact()


def test_watch_from_too_old_resource_version_is_error_410(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    # a watch cache that keeps only 10 events, so the bootstrap objects already push revision 1 out
    monkeypatch.setattr("miniapi.server.open_store", lambda data_dir: MemoryStore(history=10))
    with ServerThread(pki.config(), pki) as server:
        reply = server.call("GET", "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1"
                                   "&timeoutSeconds=5")
        assert reply.status == 200
        events = [json.loads(line) for line in reply.body.splitlines()]
        assert [e["type"] for e in events] == ["ERROR"]
        status = events[0]["object"]
        assert status["kind"] == "Status" and status["code"] == 410 and status["reason"] == "Expired"
        assert status["message"].startswith("too old resource version: 1 (")


# -- random requests ----------------------------------------------------------------------------

JUNK = st.sampled_from(["..", ".", "", "%2e%2e", "%2F", "%00", "%ff", "%", "ü", "x" * 300]) | \
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~%:", max_size=12)
NAMESPACES = st.sampled_from(["default", "fuzz", "fuzz", "kube-system", "nope"])
NAMES = st.sampled_from(["keep", "keep", "default", "kube-root-ca.crt", "kubernetes", "cluster-admin",
                         "fuzz", "nope"])
SUBRESOURCES = st.sampled_from(["status", "token", "binding", "approval", "log", "exec", "proxy"])
NON_RESOURCE = st.sampled_from(["/", "/api", "/apis", "/healthz", "/livez/ping", "/readyz?verbose",
                                "/version", "/openapi/v3", "/openapi/v3/api/v1", "/openapi/v2",
                                "/.well-known/openid-configuration", "/openid/v1/jwks", "/metrics"])
QUERY_KEYS = st.sampled_from(["watch", "limit", "continue", "labelSelector", "fieldSelector",
                              "resourceVersion", "resourceVersionMatch", "timeoutSeconds", "dryRun",
                              "sendInitialEvents", "allowWatchBookmarks", "gracePeriodSeconds",
                              "fieldManager", "force", "includeObject", "pretty", "propagationPolicy"])
QUERY_VALUES = st.sampled_from(["true", "1", "0", "-1", "All", "x", "", "a=b", "a in (", "1e9",
                                "metadata.name=keep", "99999999999999999999"]) | st.text(max_size=8)
CONTENT_TYPES = st.sampled_from([None, "application/json", "application/yaml", PROTOBUF,
                                 "application/merge-patch+json", "application/json-patch+json",
                                 "application/strategic-merge-patch+json", "application/apply-patch+yaml",
                                 "text/plain", "foo/bar", "application/json; charset=utf-8"])
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["metadata", "name", "spec", "data", "kind", "apiVersion", "labels", "status", "op",
                     "path", "value", "$patch", "containers", "rules", "roleRef", "subjects", "user",
                     "resourceAttributes", "token", "request", "conditions"]) | st.text(max_size=5),
    inner, max_size=4), max_leaves=12)
META = st.fixed_dictionaries({}, optional={
    "name": NAMES | SCALARS, "namespace": NAMES | SCALARS, "generateName": st.just("fuzz-") | SCALARS,
    "labels": st.dictionaries(st.text(max_size=6), st.text(max_size=6) | SCALARS, max_size=2) | JSON,
    "resourceVersion": st.sampled_from(["1", "0", "x"]) | SCALARS, "finalizers": JSON})
OBJECTS = st.fixed_dictionaries({}, optional={
    "kind": st.sampled_from(["Pod", "ConfigMap", "Namespace", "Status"]) | SCALARS,
    "apiVersion": st.sampled_from(["v1", "rbac.authorization.k8s.io/v1"]) | SCALARS,
    "metadata": META | JSON, "spec": JSON, "data": JSON, "status": JSON})
BODIES_ANY = st.none() | st.binary(max_size=64) | (JSON | OBJECTS).map(lambda v: json.dumps(v).encode()) | \
    st.binary(max_size=48).map(lambda b: b"k8s\x00" + b)


def _mostly(good: st.SearchStrategy[str], odds: int = 6) -> st.SearchStrategy[str]:
    """``good`` most of the time, now and then junk (so most requests still reach the handlers)."""
    return st.integers(0, odds).flatmap(lambda i: JUNK if i == odds else good)  # 0 (hypothesis' favourite)
    # stays the good branch


@st.composite
def resource_path(draw: st.DrawFn) -> str:
    """Mostly well-formed resource URLs, junk in a place or two."""
    rt = draw(st.sampled_from(RESOURCES))
    parts = ["api", rt.version] if not rt.group else ["apis", rt.group, rt.version]
    if rt.namespaced and draw(st.sampled_from([True, True, True, False])):
        parts += ["namespaces", draw(_mostly(NAMESPACES))]
    parts.append(draw(_mostly(st.just(rt.resource))))
    if draw(st.booleans()):
        parts.append(draw(_mostly(NAMES)))
        if draw(st.sampled_from([True, False, False])):
            parts.append(draw(_mostly(SUBRESOURCES)))
    # percent-encoded as a client library would; '%' itself is left alone, so junk escapes get through
    return "/" + "/".join(quote(p, safe="%~.-_:") for p in parts)


@st.composite
def random_request(draw: st.DrawFn) -> tuple[str, str, bytes | None, str | None]:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]))
    junk_path = st.lists(JUNK, max_size=6).map(lambda segs: "/" + "/".join(quote(s, safe="%~.-_")
                                                                          for s in segs))
    path = draw(st.integers(0, 9).flatmap(lambda i: junk_path if i == 9 else NON_RESOURCE if i == 8
                                          else resource_path()))
    params = draw(st.lists(st.tuples(QUERY_KEYS, QUERY_VALUES), max_size=3))
    if params:
        path += ("&" if "?" in path else "?") + "&".join(f"{k}={quote(v)}" for k, v in params)
    return method, path, draw(BODIES_ANY), draw(CONTENT_TYPES)


@pytest.fixture(scope="module")
def fuzz_server(pki: Pki) -> Iterator[ServerThread]:
    with ServerThread(pki.config(), pki) as server:
        for path, body in (("/api/v1/namespaces", {"metadata": {"name": "fuzz"}}),
                           ("/api/v1/namespaces/fuzz/serviceaccounts", {"metadata": {"name": "default"}}),
                           ("/api/v1/namespaces/fuzz/configmaps", {"metadata": {"name": "keep"}}),
                           ("/api/v1/namespaces/fuzz/pods", {"metadata": {"name": "keep"}, "spec": {
                               "containers": [{"name": "c", "image": "busybox"}]}})):
            assert server.call("POST", path, body).status == 201
        yield server


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=random_request())
def test_random_requests_never_500(fuzz_server: ServerThread, request: tuple[str, str, bytes | None,
                                                                             str | None]) -> None:
    method, path, body, content_type = request
    reply = fuzz_server.call(method, path, body, content_type=content_type, raw=True, read_ok_body=False)
    assert reply.status != 500 and reply.status < 500, (method, path, reply.body)
    if reply.status >= 400 and method != "HEAD":
        assert reply.is_status(), (method, path, reply.status, reply.body)
