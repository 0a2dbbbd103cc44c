"""The on-path attacker: mitmproxy in the router's network namespace (run.py), its addon (addon.py),
the decoders it uses (decode.py) and the loot file that scenarios read (loot.py)."""
