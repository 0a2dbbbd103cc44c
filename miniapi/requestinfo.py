"""Request info: the first filter's pure parser, ``parse(method, path, query) -> RequestInfo``.

Follows k8s.io/apiserver/pkg/endpoints/request/requestinfo.go:

1. ``/api/v1/...`` is the core group, ``/apis/GROUP/VERSION/...`` a named group; anything else is a
   non-resource request whose verb is the lower-case HTTP method (``get /healthz``).
2. ``.../namespaces/NS/RESOURCE[/NAME[/SUBRESOURCE[/...]]]`` is namespaced; ``/namespaces/NS`` itself
   is the namespace object (resource ``namespaces``, name ``NS``), and ``/namespaces/NS/status`` and
   ``/finalize`` are its subresources.
3. Verb from method: GET/HEAD -> get, or (without a name) list, or watch with ``watch=true``
   (also the legacy ``/watch/`` prefix); POST -> create; PUT -> update; PATCH -> patch;
   DELETE -> delete, or deletecollection without a name.

Example: ``GET /api/v1/namespaces/default/pods/p1/log`` -> verb get, resource pods, name p1,
subresource log, namespace default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

NAMESPACE_SUBRESOURCES = ("status", "finalize")
_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True)
class RequestInfo:
    path: str
    verb: str
    is_resource_request: bool = False
    api_prefix: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    parts: tuple[str, ...] = field(default_factory=tuple)


def truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "t", "yes")


def parse(method: str, path: str, query: Mapping[str, str] | None = None) -> RequestInfo:
    query = query or {}
    lower = method.lower()
    segments = [s for s in path.strip("/").split("/")] if path.strip("/") else []
    nonresource = RequestInfo(path=path, verb=lower)
    if not segments or segments[0] not in ("api", "apis"):
        return nonresource
    prefix, rest = segments[0], segments[1:]
    if prefix == "api":
        if not rest:
            return nonresource
        group, version, rest = "", rest[0], rest[1:]
    else:
        if len(rest) < 2:
            return nonresource
        group, version, rest = rest[0], rest[1], rest[2:]
    if not rest:
        return RequestInfo(path=path, verb=lower, api_prefix=prefix, api_group=group,
                           api_version=version)
    verb = _VERBS.get(method.upper(), lower)
    if rest[0] == "watch":
        verb, rest = "watch", rest[1:]
    namespace = ""
    if len(rest) >= 2 and rest[0] == "namespaces":
        if len(rest) == 2 or rest[2] in NAMESPACE_SUBRESOURCES:
            # /namespaces/NS (and /namespaces/NS/status|finalize) is the namespace object itself
            return _finish(path, prefix, group, version, verb, "", rest, method, query)
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return nonresource
    return _finish(path, prefix, group, version, verb, namespace, rest, method, query)


def _finish(path: str, prefix: str, group: str, version: str, verb: str, namespace: str,
            parts: list[str], method: str, query: Mapping[str, str]) -> RequestInfo:
    resource = parts[0]
    name = parts[1] if len(parts) >= 2 else ""
    subresource = parts[2] if len(parts) >= 3 else ""
    if not name and verb == "get":
        verb = "list"
    if not name and verb == "delete":
        verb = "deletecollection"
    if not name and verb in ("get", "list") and truthy(query.get("watch")):  # a named GET (e.g. a proxied
        # one, ``.../pods/p/proxy/?watch=true``) stays get, as in the real parser
        verb = "watch"
    if resource == "namespaces" and not namespace and name:
        namespace = name
    return RequestInfo(path=path, verb=verb, is_resource_request=True, api_prefix=prefix, api_group=group,
                       api_version=version, namespace=namespace, resource=resource,
                       subresource=subresource, name=name, parts=tuple(parts))
