"""Pure parts of minikubelet.filters: Go's cleanPath and the metrics path buckets."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minikubelet.filters import _bucket, clean_path


@pytest.mark.parametrize(("path", "clean"), [
    ("/", "/"), ("/pods", "/pods"), ("/pods/", "/pods/"), ("//pods", "/pods"), ("/a/./b", "/a/b"),
    ("/a/../b", "/b"), ("/../../x", "/x"), ("/stats/../run/ns/p/c", "/run/ns/p/c"), ("/a/b/..", "/a"),
    ("/a/b/../", "/a/"),
], ids=lambda v: v)
def test_clean_path(path: str, clean: str) -> None:
    assert clean_path(path) == clean


@given(st.lists(st.sampled_from(["a", "b", ".", "..", ""]), max_size=8), st.booleans())
def test_clean_path_is_canonical(segments: list[str], trailing: bool) -> None:
    path = "/" + "/".join(segments) + ("/" if trailing else "")
    clean = clean_path(path)
    assert clean.startswith("/") and "//" not in clean and clean_path(clean) == clean
    assert all(seg not in (".", "..") for seg in clean.split("/"))
    assert clean.rstrip("/") == posixpath.normpath("/" + "/".join(segments)).rstrip("/").replace("//", "/")


@pytest.mark.parametrize(("path", "bucket"), [
    ("/pods", "pods"), ("/metrics/cadvisor", "metrics/cadvisor"), ("/metrics", "metrics"),
    ("/containerLogs/a/b/c", "containerLogs"), ("/nope", "other"), ("/", "other"),
])
def test_buckets(path: str, bucket: str) -> None:
    assert _bucket(path) == bucket
