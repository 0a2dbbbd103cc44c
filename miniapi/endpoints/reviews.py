"""Create-only virtual kinds: TokenRequest, TokenReview, the access reviews, SelfSubjectReview, Binding.

1. ``serviceaccounts/NAME/token`` (TokenRequest) signs a bound JWT: the service account must exist;
   ``expirationSeconds`` defaults to 3600 and may not be under 600; audiences default to
   ``--api-audiences``; a ``boundObjectRef`` (Pod, Secret, Node) must exist and match its uid, and a
   bound Pod must run as that service account.
2. TokenReview runs the bearer-token authenticators (never anonymous) on ``spec.token``.
3. SubjectAccessReview / LocalSubjectAccessReview ask the authorizer about ``spec.user``;
   SelfSubjectAccessReview about the caller; SelfSubjectRulesReview lists the caller's rules.
4. SelfSubjectReview (``kubectl auth whoami``) echoes the caller's UserInfo.
5. ``pods/NAME/binding`` assigns a pod to a node once (the scheduler's write) and sets PodScheduled=True.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from aiohttp import web

from miniapi import admission, errors
from miniapi.authn.base import AuthenticationError, AuthResponse, Credentials
from miniapi.authn.serviceaccount import ServiceAccountAuthenticator
from miniapi.authz.base import Attributes, Decision
from miniapi.endpoints import negotiation
from miniapi.endpoints.objects import store_errors
from miniapi.filters.keys import INFO, USER
from miniapi.registry.base import cause
from miniapi.registry.serviceaccount import MAX_TOKEN_SECONDS, MIN_TOKEN_SECONDS, token_lifetime
from miniapi.resources import ResourceType, lookup
from miniapi.store import NotFound
from miniapi.user import UserInfo, with_authenticated_group

if TYPE_CHECKING:
    from miniapi.server import APIServer

Obj = dict[str, Any]
AUTHN, AUTHZ = "authentication.k8s.io/v1", "authorization.k8s.io/v1"


def _spec(body: Obj) -> Obj:
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise errors.bad_request("spec must be an object")
    return spec


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def _reply(request: web.Request, kind: str, api_version: str, body: Obj, spec: Obj, status: Obj) -> web.Response:
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    return negotiation.json_response({"kind": kind, "apiVersion": api_version, "metadata": meta or {},
                                      "spec": spec, "status": status}, 201, request=request)


class Reviews:
    def __init__(self, server: APIServer) -> None:
        self.server = server

    async def token_request(self, request: web.Request) -> web.Response:
        info = request[INFO]
        body = await negotiation.read_object(request)
        spec = _spec(body)
        sa_rt = lookup("", "serviceaccounts")
        assert sa_rt is not None
        with store_errors(sa_rt, info.name):
            sa = await self.server.store.get("serviceaccounts", info.namespace, info.name)
        await self.server.admission.admit(admission.Attributes(  # NodeRestriction: a pod on this node
            request[USER], admission.Operation.CREATE, "", "serviceaccounts", "token", info.namespace, info.name,
            body))
        seconds = spec.get("expirationSeconds", 3600)
        if not isinstance(seconds, int) or seconds < MIN_TOKEN_SECONDS or seconds > MAX_TOKEN_SECONDS:
            why = "less than 10 minutes" if not isinstance(seconds, int) or seconds < MIN_TOKEN_SECONDS else \
                "larger than 2^32 seconds"
            raise errors.invalid("TokenRequest", info.name, [cause(
                "spec.expirationSeconds", f"Invalid value: {seconds}: may not specify a duration {why}")],
                "authentication.k8s.io")
        cfg = self.server.config
        audiences = spec.get("audiences") or list(cfg.audiences)
        if not isinstance(audiences, list) or not all(isinstance(a, str) and a for a in audiences):
            raise errors.invalid("TokenRequest", info.name, [cause("spec.audiences", "Invalid value: "
                                 "audiences must be non-empty strings")], "authentication.k8s.io")
        bound = await self._bound_object(spec.get("boundObjectRef"), info.namespace, info.name)
        life = token_lifetime(seconds, cfg.service_account_max_token_expiration,
                              cfg.service_account_extend_token_expiration, bound.get("bound", ("",))[0] == "Pod",
                              audiences, cfg.audiences)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        token, _ = self.server.issuer.issue(
            namespace=info.namespace, sa_name=info.name, sa_uid=sa["metadata"].get("uid", ""),
            audiences=audiences, expiration_seconds=life.token_seconds, now=now,
            warn_after_seconds=life.warn_after_seconds, **bound)
        spec = {"audiences": audiences, "expirationSeconds": life.seconds,
                "boundObjectRef": spec.get("boundObjectRef")}
        expires = now + dt.timedelta(seconds=life.seconds)
        status = {"token": token, "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
        meta = {"name": info.name, "namespace": info.namespace,
                "creationTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
        resp = negotiation.json_response({"kind": "TokenRequest", "apiVersion": AUTHN, "metadata": meta,
                                          "spec": spec, "status": status}, 201, request=request)
        if life.warning:
            resp.headers["Warning"] = f'299 - "{life.warning}"'
        return resp

    async def _bound_object(self, ref: Any, namespace: str, sa_name: str) -> dict[str, Any]:
        if not ref:
            return {}
        if not isinstance(ref, dict) or ref.get("kind") not in ("Pod", "Secret", "Node"):
            raise errors.invalid("TokenRequest", "", [cause("spec.boundObjectRef.kind", "Unsupported "
                                 'value: supported values: "Pod", "Secret", "Node"')], "authentication.k8s.io")
        kind, name = ref["kind"], str(ref.get("name") or "")
        key = {"Pod": "pods", "Secret": "secrets", "Node": "nodes"}[kind]
        try:
            obj = await self.server.store.get(key, "" if kind == "Node" else namespace, name)
        except NotFound:
            raise errors.not_found(key, name) from None
        if kind == "Pod" and (obj.get("spec") or {}).get("serviceAccountName") != sa_name:
            raise errors.bad_request(f'cannot bind token for serviceaccount "{sa_name}" to pod running with '
                                     "different serviceaccount name.")
        uid = obj["metadata"].get("uid", "")
        if ref.get("uid") and ref["uid"] != uid:
            raise errors.conflict(key, name, f"the UID in the bound object reference ({ref['uid']}) does "
                                  f"not match the UID in record. The object might have been deleted and "
                                  f"then recreated")
        bound: dict[str, Any] = {"bound": (kind, name, uid)}
        node = obj.get("spec", {}).get("nodeName") if kind == "Pod" else None
        if node:
            try:
                node_obj = await self.server.store.get("nodes", "", node)
                bound["node"] = (node, node_obj["metadata"].get("uid", ""))
            except NotFound:
                pass
        return bound

    async def token_review(self, request: web.Request) -> web.Response:
        body = await negotiation.read_object(request)
        spec = _spec(body)
        token = spec.get("token")
        if not isinstance(token, str) or not token:
            raise errors.invalid("TokenReview", "", [cause("spec.token", "Required value",
                                                           "FieldValueRequired")], "authentication.k8s.io")
        wanted = spec.get("audiences") or []
        if not isinstance(wanted, list) or not all(isinstance(a, str) for a in wanted):
            raise errors.bad_request("spec.audiences must be a list of strings")
        resp, error = await self._review(token, wanted)
        status: Obj
        if resp is not None:
            status = {"authenticated": True, "user": with_authenticated_group(resp.user).to_json(),
                      "audiences": list(resp.audiences)}
        else:
            status = {"authenticated": False, "user": {}, "error": error}
        return _reply(request, "TokenReview", AUTHN, body, spec, status)

    async def _review(self, token: str, wanted: list[str]) -> tuple[AuthResponse | None, str]:
        """Run the bearer-token authenticators with the review's audiences (default: --api-audiences).

        1. Service-account JWTs are checked against the requested audiences themselves.
        2. Audience-agnostic tokens (token file, bootstrap) are valid for the API audiences only: the
           request must name at least one of them, as the real apiserver's audience wrapper demands.
        """
        api = list(self.server.config.audiences)
        failures: list[str] = []
        union = self.server.token_authenticator
        for source in getattr(union, "authenticators", (union,)):
            try:
                if isinstance(source, ServiceAccountAuthenticator):
                    resp = await source.authenticate_token(token, wanted or None)
                else:
                    resp = await source.authenticate(Credentials(f"Bearer {token}"))
                    if resp is not None:
                        granted = [a for a in wanted if a in api] if wanted else api
                        if not granted:
                            raise AuthenticationError(f"token audiences {api} is invalid for the target "
                                                      f"audiences {wanted}")
                        resp = AuthResponse(resp.user, tuple(granted), resp.authenticator)
            except AuthenticationError as exc:
                failures.append(str(exc))
                continue
            if resp is not None:
                return resp, ""
        return None, "; ".join(failures) or "invalid bearer token"

    async def _decide(self, user: UserInfo, spec: Obj, namespace: str | None = None) -> Obj:
        res, nonres = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if bool(res) == bool(nonres):
            raise errors.invalid("SubjectAccessReview", "", [cause(
                "spec.resourceAttributes", "Invalid value: exactly one of nonResourceAttributes or "
                "resourceAttributes must be specified")], "authorization.k8s.io")
        if res:
            if not isinstance(res, dict):
                raise errors.bad_request("spec.resourceAttributes must be an object")
            ns = res.get("namespace", "") if namespace is None else namespace
            attrs = Attributes(user=user, verb=str(res.get("verb", "")), namespace=str(ns or ""),
                               api_group=str(res.get("group", "")), api_version=str(res.get("version", "")),
                               resource=str(res.get("resource", "")),
                               subresource=str(res.get("subresource", "")), name=str(res.get("name", "")))
        else:
            if not isinstance(nonres, dict):
                raise errors.bad_request("spec.nonResourceAttributes must be an object")
            attrs = Attributes(user=user, verb=str(nonres.get("verb", "")), is_resource_request=False,
                               path=str(nonres.get("path", "")))
        decision, reason = await self.server.authorizer.authorize(attrs)
        status: Obj = {"allowed": decision is Decision.ALLOW}
        if decision is Decision.DENY:
            status["denied"] = True
        if reason:
            status["reason"] = reason
        return status

    async def subject_access_review(self, request: web.Request, local: bool = False) -> web.Response:
        body = await negotiation.read_object(request)
        spec = _spec(body)
        if not spec.get("user") and not spec.get("groups"):
            raise errors.invalid("SubjectAccessReview", "", [cause("spec.user", "Invalid value: \"\": at "
                                 "least one of user or group must be specified")], "authorization.k8s.io")
        extra, groups = spec.get("extra") or {}, spec.get("groups") or []
        if not _strings(groups) or not isinstance(extra, dict) or \
                not all(_strings(v or []) for v in extra.values()):
            raise errors.bad_request('SubjectAccessReview in version "v1" cannot be handled as a '
                                     "SubjectAccessReview: spec.groups must be a list of strings and "
                                     "spec.extra a map of string lists")
        user = UserInfo(str(spec.get("user", "")), str(spec.get("uid", "")), tuple(groups),
                        {str(k): tuple(v or ()) for k, v in extra.items()})
        namespace = None
        if local:
            namespace = request[INFO].namespace
            res = spec.get("resourceAttributes") or {}
            if isinstance(res, dict) and res.get("namespace", namespace) != namespace:
                raise errors.bad_request("spec.resourceAttributes.namespace must match metadata.namespace")
        status = await self._decide(user, spec, namespace)
        kind = "LocalSubjectAccessReview" if local else "SubjectAccessReview"
        return _reply(request, kind, AUTHZ, body, spec, status)

    async def self_subject_access_review(self, request: web.Request) -> web.Response:
        body = await negotiation.read_object(request)
        spec = _spec(body)
        status = await self._decide(request[USER], spec)
        return _reply(request, "SelfSubjectAccessReview", AUTHZ, body, spec, status)

    async def self_subject_rules_review(self, request: web.Request) -> web.Response:
        body = await negotiation.read_object(request)
        spec = _spec(body)
        namespace = spec.get("namespace", "")
        result = await self.server.rule_resolver.rules_for(request[USER], str(namespace or ""))
        status: Obj = {
            "resourceRules": [{"verbs": list(r.verbs), "apiGroups": list(r.api_groups),
                               "resources": list(r.resources), "resourceNames": list(r.resource_names)}
                              for r in result.resource_rules],
            "nonResourceRules": [{"verbs": list(r.verbs), "nonResourceURLs": list(r.non_resource_urls)}
                                 for r in result.non_resource_rules],
            "incomplete": result.incomplete}
        if result.evaluation_error:
            status["evaluationError"] = result.evaluation_error
        return _reply(request, "SelfSubjectRulesReview", AUTHZ, body, spec, status)

    async def self_subject_review(self, request: web.Request) -> web.Response:
        await negotiation.read_body(request)
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return negotiation.json_response({
            "kind": "SelfSubjectReview", "apiVersion": AUTHN, "metadata": {"creationTimestamp": now},
            "status": {"userInfo": request[USER].to_json()}}, 201, request=request)

    async def binding(self, request: web.Request, rt: ResourceType) -> web.Response:
        info = request[INFO]
        body = await negotiation.read_object(request)
        target = body.get("target") if isinstance(body.get("target"), dict) else None
        if not target or not target.get("name"):
            raise errors.invalid("Binding", info.name, [cause("target.name", "Required value",
                                                              "FieldValueRequired")])
        node = str(target["name"])

        def assign(pod: Obj) -> Obj:
            current = pod.get("spec", {}).get("nodeName")
            if current:
                raise errors.conflict("pods", info.name, f'pod {info.name} is already assigned to node '
                                      f'"{current}"')
            pod["spec"]["nodeName"] = node
            _set_scheduled(pod)
            return pod

        with store_errors(rt, info.name):
            await self.server.store.guaranteed_update("pods", info.namespace, info.name, assign)
        return negotiation.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                          "status": "Success", "code": 201}, 201, request=request)


def _set_scheduled(pod: Obj) -> None:
    """Binding storage marks the pod PodScheduled=True, replacing the scheduler's earlier False."""
    status = pod.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                       "lastTransitionTime": now})
    status["conditions"] = conditions
