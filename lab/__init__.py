"""The workshop lab's own tooling, kept out of the product packages: what runs *inside* the compose
lab (docker-compose.yml) next to the real components.

- :mod:`lab.roles`      the entry of every lab container: the component's real command line, with the
                        flags of the profile switch (minilab.profiles) for this lab's LAB_PROFILE/LAB_SET
- :mod:`lab.topology`   the addresses of the two networks and the router between them
- :mod:`lab.attacker`   the on-path attacker: mitmproxy addons that say in plain words what they steal
- :mod:`lab.scenarios`  ``lab scenario NAME``: the steps of one attack, what to notice, and a non-zero
                        exit when the expected outcome does not happen
"""
