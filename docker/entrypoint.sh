#!/bin/sh
# Every lab container starts here (docker/Dockerfile ENTRYPOINT), then runs its command.
#
# 1. No default route: a lab container reaches its own networks and nothing beyond this machine
#    (the compose networks also have IP masquerading off). LAB_ROUTES="CIDR=GATEWAY ...": the
#    other lab network, only through the router (and the attacker in its namespace); without the
#    route docker's isolation rules drop the packets.
# 2. A node's SSH host key is made here, per container (the base image has none), so no two nodes
#    share one. Ed25519 only: fast. (The tunnel sshd of LAB_TUNNEL=ssh, scenario 7, uses the host key
#    the pki job made for the node instead, so the apiserver's known_hosts can list it: lab/tunnel.py.)
set -e
ip route del default 2>/dev/null || true
for route in $LAB_ROUTES; do
    ip route replace "${route%%=*}" via "${route#*=}"
done
if [ -n "$LAB_NODE_NAME" ] && command -v ssh-keygen >/dev/null; then
    rm -f /etc/ssh/ssh_host_*
    ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key
fi
exec "$@"
