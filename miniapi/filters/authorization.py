"""WithAuthorization: ask the union authorizer; deny (403 with the real message) unless someone allowed."""

from __future__ import annotations

import logging

from aiohttp import web

from miniapi.authz.base import Attributes, Authorizer, Decision
from miniapi.authz.rbac import forbidden_message
from miniapi.errors import forbidden
from miniapi.filters import Filter, Handler
from miniapi.filters.keys import AUTHZ, INFO, USER
from miniapi.filters.requestinfo import CACHE_MAX_PATH
from miniapi.requestinfo import RequestInfo
from miniapi.user import UserInfo

log = logging.getLogger("miniapi.authz")


CACHE_SIZE = 4096
# (id(user), id(info)) -> (user, info, attributes): the entry holds both, so neither id can be reused
# while it lives. Users and RequestInfos are frozen, and the authenticators and WithRequestInfo hand
# out the same objects for a repeat caller and path, so a repeat request reuses its Attributes.
_attributes: dict[tuple[int, int], tuple[UserInfo, RequestInfo, Attributes]] = {}


def attributes_of(user: UserInfo, info: RequestInfo) -> Attributes:
    key = (id(user), id(info))
    hit = _attributes.get(key)
    if hit is not None and hit[0] is user and hit[1] is info:
        return hit[2]
    attrs = Attributes(user=user, verb=info.verb, is_resource_request=info.is_resource_request,
                       namespace=info.namespace, api_group=info.api_group, api_version=info.api_version,
                       resource=info.resource, subresource=info.subresource, name=info.name, path=info.path)
    if len(info.path) > CACHE_MAX_PATH:  # never remembered by WithRequestInfo either: not a repeat
        return attrs
    if len(_attributes) >= CACHE_SIZE:
        del _attributes[next(iter(_attributes))]
    _attributes[key] = (user, info, attrs)
    return attrs


def with_authorization(authorizer: Authorizer) -> Filter:
    def wrap(handler: Handler) -> Handler:
        async def authorize(request: web.Request) -> web.StreamResponse:
            attrs = attributes_of(request[USER], request[INFO])
            decision, reason = await authorizer.authorize(attrs)
            request[AUTHZ] = (decision, reason)
            if decision is not Decision.ALLOW:
                msg = forbidden_message(attrs)
                if reason:
                    msg = f"{msg}: {reason}"
                log.info("forbidden: user=%s verb=%s path=%s reason=%s", attrs.user.name, attrs.verb,
                         attrs.path, reason or "-")
                raise forbidden(msg, attrs.resource, attrs.name, attrs.api_group)
            return await handler(request)

        return authorize

    return wrap
