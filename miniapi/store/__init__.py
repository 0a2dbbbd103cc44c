"""Object storage behind the :class:`~miniapi.store.base.Store` protocol."""

from miniapi.store.base import AlreadyExists, Conflict, Expired, NotFound, Obj, Store, StoreError, WatchEvent

__all__ = ["AlreadyExists", "Conflict", "Expired", "NotFound", "Obj", "Store", "StoreError", "WatchEvent"]
