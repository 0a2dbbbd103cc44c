"""Flag value types shared by every component's command line, with Go's (pflag/strconv) semantics so
that flags copied from real Kubernetes manifests parse the same here."""

from __future__ import annotations

import argparse


def parse_bool(text: str) -> bool:
    """strconv.ParseBool: 1, t, T, TRUE, true, True / 0, f, F, FALSE, false, False."""
    value = str(text).strip()
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r} (true or false)")


def parse_csv(text: str) -> list[str]:
    """A pflag string slice: comma-separated, blanks dropped."""
    return [part.strip() for part in text.split(",") if part.strip()]
