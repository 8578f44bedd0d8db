#!/usr/bin/env bash
# Installs HAProxy from Debian's packages: the load balancer in front of the simulated fleet
# (dev/cmd/fleet, dev/fleet). Idempotent; root. Its system service is disabled: the fleet runs its
# own haproxy on loopback with its own config.
#
#   bash dev/install-haproxy.sh      (dev/env.sh up calls it; prints the binary's path)
set -euo pipefail

log() { printf 'dev/install-haproxy: %s\n' "$*" >&2; }

main() {
  if ! dpkg-query -W -f='${Status}' haproxy 2>/dev/null | grep -q 'install ok installed'; then
    [ "$(id -u)" -eq 0 ] || { log "run as root (installs the haproxy Debian package)"; exit 1; }
    log "installing haproxy (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends haproxy >/dev/null
    systemctl disable --now haproxy.service >/dev/null 2>&1 || true
  fi
  command -v haproxy
}

main "$@"
