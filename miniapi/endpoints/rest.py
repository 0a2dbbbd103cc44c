"""The generic REST handlers: get, list, create, update, patch, delete, deletecollection.

Every stored kind goes through these; what differs per kind lives in its registry strategy. Flow of a
write, as in k8s.io/apiserver/pkg/endpoints/handlers:

1. decode the body (JSON, YAML or protobuf) and check kind/apiVersion, namespace and name against the
   URL;
2. namespace lifecycle: the namespace must exist and not be terminating;
3. admission (:mod:`miniapi.admission`, e.g. NodeRestriction) on the decoded object -> 403;
   strategy.prepare_* (defaults, server-owned fields, the ServiceAccount plugin), then
   strategy.validate* -> 422;
4. the store write with optimistic concurrency (409 Conflict on a stale resourceVersion); an update
   that changes nothing is not written and keeps its resourceVersion (GuaranteedUpdate's no-op check);
5. ``dryRun=All`` stops before step 4 and answers as if written.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import TYPE_CHECKING, Any

from aiohttp import web

from miniapi import errors
from miniapi.admission import Attributes, Operation
from miniapi.endpoints import negotiation
from miniapi.endpoints.encoded import EncodedAnswers
from miniapi.endpoints.objects import (
    Filter,
    decode_continue,
    decode_error,
    delete_options_error,
    dry_run,
    encode_continue,
    parse_int,
    parse_rv,
    sort_key,
    store_errors,
    with_type,
)
from miniapi.filters.keys import INFO, USER
from miniapi.printers import table_for, table_include_object, wants_table
from miniapi.registry.base import Ctx, Obj, Strategy, keep_immutable_metadata, now_rfc3339, stamp_new
from miniapi.resources import ResourceType
from miniapi.store import NotFound
from miniapi.wire import patch as patching

if TYPE_CHECKING:
    from miniapi.server import APIServer


Causes = list[dict[str, str]]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RestHandlers:
    def __init__(self, server: APIServer) -> None:
        self.server = server
        self.encoded = EncodedAnswers()  # plain GET answers, by resourceVersion

    @property
    def store(self) -> Any:
        return self.server.store

    def ctx(self, request: web.Request) -> Ctx:
        info = request[INFO]
        options = _OPTIONS_KIND.get(info.verb, "DeleteOptions")
        dry = dry_run(request.query.getall("dryRun", []), options)
        return Ctx(self.server, request[USER], info, dry_run=dry)

    async def admit(self, request: web.Request, rt: ResourceType, op: Operation, name: str, obj: Obj | None,
                    old: Obj | None = None) -> None:
        """The admission chain for one write (403 if a plugin refuses)."""
        info = request[INFO]
        await self.server.admission.admit(Attributes(
            request[USER], op, rt.group, rt.resource, info.subresource,
            info.namespace if rt.namespaced else "", name, obj, old))

    def respond(self, request: web.Request, rt: ResourceType, obj: Obj, status: int = 200) -> web.Response:
        with_type(rt, obj)
        accept = request.headers.get("Accept", "")
        # "Table" in accept: a cheap pre-check, wants_table needs that literal ``as=Table``
        if request.method == "GET" and "Table" in accept and wants_table(accept):
            return negotiation.json_response(table_for(rt, [obj], _now(),
                                                       table_include_object(request.query)), status, request=request)
        return negotiation.json_response(obj, status, request=request)

    # -- reads ----------------------------------------------------------------------------------
    async def get(self, request: web.Request, rt: ResourceType) -> web.Response:
        info = request[INFO]
        if request.query_string:
            parse_rv(request.query.get("resourceVersion"))  # 400 on a malformed one, as for watch
        namespace = info.namespace if rt.namespaced else ""
        table = request.method == "GET" and "Table" in request.headers.get("Accept", "")
        plain = not table and not negotiation.pretty(request)  # only the codec's compact bytes are remembered
        if plain and (body := self.encoded.lookup(self.server.store, rt, namespace, info.name)) is not None:
            return negotiation.encoded_response(body)
        with store_errors(rt, info.name):
            obj = await self.store.get(rt.key, namespace, info.name)
        if not plain:
            return self.respond(request, rt, obj)
        body = negotiation.dumps(with_type(rt, obj))
        self.encoded.keep(rt, namespace, info.name, obj, body)
        return negotiation.encoded_response(body)

    async def list(self, request: web.Request, rt: ResourceType) -> web.Response:
        info, query = request[INFO], request.query
        keep = Filter(rt, query)
        parse_rv(query.get("resourceVersion"))
        limit = parse_int(query, "limit", 0) or 0
        items, revision = await self.store.list(rt.key, info.namespace if rt.namespaced and info.namespace
                                                else None)
        after = ""
        if query.get("continue"):
            revision, after = decode_continue(query["continue"])
        items = [o for o in items if keep(o) and (not after or sort_key(o) > after)]
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if limit and len(items) > limit:
            items = items[:limit]
            meta["continue"] = encode_continue(revision, sort_key(items[-1]))
            meta["remainingItemCount"] = 0
        if wants_table(request.headers.get("Accept", "")):
            table = table_for(rt, [with_type(rt, o) for o in items], _now(), table_include_object(query))
            table["metadata"] = meta
            return negotiation.json_response(table, request=request)
        return negotiation.json_response({"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                                          "metadata": meta, "items": [with_type(rt, o) for o in items]},
                                         request=request)

    # -- create ---------------------------------------------------------------------------------
    def check_identity(self, rt: ResourceType, obj: Obj, info: Any, creating: bool) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind not in (None, "", rt.kind) or api_version not in (None, "", rt.api_version):
            raise errors.bad_request(f"the API version in the data ({api_version}) does not match the "
                                     f"expected API version ({rt.api_version})" if kind == rt.kind else
                                     f'{rt.kind} in version "{rt.version}" cannot be handled as a '
                                     f'{kind}: no kind "{kind}" is registered for version '
                                     f'"{api_version}" in scheme')
        if why := decode_error(rt.kind, obj):
            if info.verb == "patch":  # the patched document no longer decodes (handlers/patch.go)
                raise errors.invalid(rt.kind, info.name, [{"reason": "FieldValueInvalid", "field": "patch",
                                                           "message": f"Invalid value: {why}"}], rt.group)
            raise errors.bad_request(f'{rt.kind} in version "{rt.version}" cannot be handled as a '
                                     f"{rt.kind}: {why}")
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if rt.namespaced:
            ns = meta.get("namespace") or info.namespace
            if info.namespace and ns != info.namespace:
                raise errors.bad_request("the namespace of the provided object does not match the "
                                         "namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if not creating and not meta.get("name"):
            raise errors.bad_request(f"the name of the object ({info.name} based on URL) was "
                                     "undeterminable: name must be provided")
        if not creating and meta.get("name") != info.name:
            raise errors.bad_request("the name of the object "
                                     f'({meta.get("name")}) does not match the name on the URL ({info.name})')

    async def check_namespace(self, rt: ResourceType, namespace: str, creating: bool) -> None:
        if not rt.namespaced:
            return
        try:
            ns = await self.store.get("namespaces", "", namespace)
        except NotFound:
            raise errors.not_found("namespaces", namespace) from None
        if creating and ns.get("metadata", {}).get("deletionTimestamp"):
            raise errors.forbidden(f"unable to create new content in namespace {namespace} because it is "
                                   "being terminated", rt.resource, "", rt.group)

    def invalid_if(self, rt: ResourceType, name: str, causes: Causes) -> None:
        if causes:
            raise errors.invalid(rt.kind, name, causes, rt.group)

    async def create(self, request: web.Request, rt: ResourceType, strategy: Strategy) -> web.Response:
        info, ctx = request[INFO], self.ctx(request)
        obj = await negotiation.read_object(request)
        self.check_identity(rt, obj, info, creating=True)
        meta = obj["metadata"]
        if not meta.get("name") and isinstance(meta.get("generateName"), str) and meta["generateName"]:
            meta["name"] = meta["generateName"] + _random_suffix()
        await self.check_namespace(rt, meta.get("namespace", ""), creating=True)
        await self.admit(request, rt, Operation.CREATE, str(meta.get("name") or ""), obj)
        stamp_new(obj)
        with_type(rt, obj)
        self.invalid_if(rt, str(meta.get("name") or ""), strategy.validate_metadata(obj))
        await strategy.prepare_create(ctx, obj)
        self.invalid_if(rt, meta["name"], strategy.validate(obj))
        if ctx.dry_run:
            return self.respond(request, rt, obj, 201)
        with store_errors(rt, meta["name"]):
            stored = await self.store.create(rt.key, obj)
        await strategy.after_create(ctx, stored)
        return self.respond(request, rt, stored, 201)

    # -- update / patch -------------------------------------------------------------------------
    async def write(self, request: web.Request, rt: ResourceType, strategy: Strategy, new: Obj,
                    old: Obj) -> web.Response:
        """Shared tail of PUT and PATCH (main resource or a subresource)."""
        info, ctx = request[INFO], self.ctx(request)
        self.check_identity(rt, new, info, creating=False)
        with_type(rt, new)
        await self.admit(request, rt, Operation.UPDATE, info.name, new, old)
        sub = info.subresource
        if sub == "status":
            await strategy.prepare_status_update(ctx, new, old)
        elif sub == "approval":
            await strategy.prepare_approval(ctx, new, old)  # type: ignore[attr-defined]
        else:
            await strategy.prepare_update(ctx, new, old)
        keep_immutable_metadata(new, old)
        self.invalid_if(rt, info.name, strategy.validate_update(new, old))
        if ctx.dry_run:
            return self.respond(request, rt, new)
        if _finalized(new):
            with store_errors(rt, info.name):
                gone = await self.store.delete(rt.key, info.namespace if rt.namespaced else "", info.name,
                                               new["metadata"].get("resourceVersion") or None)
            await strategy.after_delete(ctx, gone)
            return self.respond(request, rt, gone)
        if new == {**old, "apiVersion": rt.api_version, "kind": rt.kind}:
            return self.respond(request, rt, old)  # a no-op write is not stored: same resourceVersion
        with store_errors(rt, info.name):
            stored = await self.store.update(rt.key, new)
        return self.respond(request, rt, stored)

    async def update(self, request: web.Request, rt: ResourceType, strategy: Strategy) -> web.Response:
        info = request[INFO]
        new = await negotiation.read_object(request)
        with store_errors(rt, info.name):
            old = await self.store.get(rt.key, info.namespace if rt.namespaced else "", info.name)
        new.setdefault("metadata", {})
        if not isinstance(new["metadata"], dict):
            raise errors.bad_request("metadata must be an object")
        if not new["metadata"].get("resourceVersion") and info.subresource == "":
            # PUT without resourceVersion is an unconditional update
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        return await self.write(request, rt, strategy, new, old)

    async def patch(self, request: web.Request, rt: ResourceType, strategy: Strategy) -> web.Response:
        info = request[INFO]
        body = await negotiation.read_body(request)
        ctype = negotiation.media_type(request)
        with store_errors(rt, info.name):
            old = await self.store.get(rt.key, info.namespace if rt.namespaced else "", info.name)
        with_type(rt, old)
        try:
            new = patching.apply_patch(copy.deepcopy(old), body, ctype, rt.kind)
        except patching.PatchError as exc:
            reason = {400: "BadRequest", 415: "UnsupportedMediaType"}.get(exc.code, "Invalid")
            raise errors.ApiError(exc.code, reason, str(exc)) from None
        if not isinstance(new, dict):
            raise errors.bad_request("the patch must produce an object")
        new.setdefault("metadata", {})
        if not isinstance(new["metadata"], dict):
            raise errors.bad_request("metadata must be an object")
        patched_rv = new["metadata"].get("resourceVersion")
        if patched_rv == old["metadata"].get("resourceVersion") or not patched_rv:
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        return await self.write(request, rt, strategy, new, old)

    # -- delete ---------------------------------------------------------------------------------
    async def delete_options(self, request: web.Request) -> Obj:
        raw = await negotiation.read_body(request)
        options: Obj = {}
        if raw.strip():
            options = negotiation.decode_object(raw, negotiation.media_type(request))
            if why := delete_options_error(options):
                raise errors.bad_request(f'DeleteOptions in version "v1" cannot be handled as a '
                                         f"DeleteOptions: {why}")
            dry_run(options.get("dryRun") or [], "DeleteOptions")
        grace = parse_int(request.query, "gracePeriodSeconds")
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        if "dryRun" in request.query:
            options["dryRun"] = request.query.getall("dryRun")
        return options

    async def delete(self, request: web.Request, rt: ResourceType, strategy: Strategy) -> web.Response:
        info, ctx = request[INFO], self.ctx(request)
        options = await self.delete_options(request)
        namespace = info.namespace if rt.namespaced else ""
        with store_errors(rt, info.name):
            obj = await self.store.get(rt.key, namespace, info.name)
        await self.admit(request, rt, Operation.DELETE, info.name, None, obj)
        if info.resource == "namespaces" and info.name in _protected_namespaces():
            raise errors.forbidden(f'namespaces "{info.name}" is forbidden: this namespace may not be '
                                   "deleted", "namespaces", info.name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != obj["metadata"].get("uid"):
            raise errors.conflict(rt.resource, info.name, f"Precondition failed: UID in precondition: "
                                  f"{pre['uid']}, UID in object meta: {obj['metadata'].get('uid')}", rt.group)
        rv = pre.get("resourceVersion") or None
        if "All" in (options.get("dryRun") or []):
            return self.respond(request, rt, obj)
        return await self.finish_delete(request, rt, strategy, ctx, obj, options, rv)

    async def finish_delete(self, request: web.Request, rt: ResourceType, strategy: Strategy, ctx: Ctx,
                            obj: Obj, options: Obj, rv: str | None) -> web.Response:
        meta, grace = obj["metadata"], options.get("gracePeriodSeconds")
        if meta.get("finalizers") or strategy.graceful(obj, grace):
            if grace is None:
                grace = int(obj.get("spec", {}).get("terminationGracePeriodSeconds", 30) or 0) \
                    if strategy.graceful(obj, grace) else 0
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = now_rfc3339()
                meta["deletionGracePeriodSeconds"] = grace
                if rv:
                    meta["resourceVersion"] = rv
                with store_errors(rt, meta["name"]):
                    obj = await self.store.update(rt.key, obj)
            return self.respond(request, rt, obj)
        with store_errors(rt, meta["name"]):
            gone = await self.store.delete(rt.key, meta.get("namespace", "") if rt.namespaced else "",
                                           meta["name"], rv)
        await strategy.after_delete(ctx, gone)
        if rt.resource in _RETURN_DELETED_OBJECT:
            return self.respond(request, rt, gone)
        return negotiation.json_response({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": meta["name"], "group": rt.group, "kind": rt.resource,
                        "uid": meta.get("uid", "")}}, request=request)

    async def delete_collection(self, request: web.Request, rt: ResourceType,
                                strategy: Strategy) -> web.Response:
        info, ctx = request[INFO], self.ctx(request)
        keep = Filter(rt, request.query)
        options = await self.delete_options(request)
        items, _ = await self.store.list(rt.key, info.namespace if rt.namespaced and info.namespace else None)
        deleted = []
        for obj in items:
            if not keep(obj):
                continue
            await self.admit(request, rt, Operation.DELETE, obj["metadata"]["name"], None, obj)
            if "All" not in (options.get("dryRun") or []):
                try:
                    await self.finish_delete(request, rt, strategy, ctx, obj, options, None)
                except errors.ApiError as err:
                    if err.code != 404:
                        raise
            deleted.append(with_type(rt, obj))
        return negotiation.json_response({"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                                          "metadata": {}, "items": deleted}, request=request)


# registries with ReturnDeletedObject (pods, services, serviceaccounts) answer a delete with the object;
# namespaces always do (they finalize); every other kind answers a Success Status
_RETURN_DELETED_OBJECT = ("pods", "namespaces", "services", "serviceaccounts")
_OPTIONS_KIND = {"create": "CreateOptions", "update": "UpdateOptions", "patch": "PatchOptions"}


def _finalized(obj: Obj) -> bool:
    """A marked object whose last finalizer was just removed (and no kubelet still owns it) goes away."""
    meta = obj.get("metadata", {})
    return bool(meta.get("deletionTimestamp")) and not meta.get("finalizers") and \
        meta.get("deletionGracePeriodSeconds", 0) == 0 and obj.get("kind") != "Pod"


def _protected_namespaces() -> tuple[str, ...]:
    from miniapi.registry.core import PROTECTED_NAMESPACES

    return PROTECTED_NAMESPACES


def _random_suffix() -> str:
    import secrets

    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(secrets.choice(alphabet) for _ in range(5))
