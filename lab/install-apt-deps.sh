#!/usr/bin/env bash
# Install the Debian packages of lab/apt-packages.txt that are missing. Quick (one
# dpkg-query) when everything is there; needs root otherwise.
set -euo pipefail
list=${1:-$(dirname "$0")/apt-packages.txt}
mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^[[:space:]]*$/d' "$list")
missing=()
for pkg in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "apt-deps: all ${#wanted[@]} packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "apt-deps: missing ${missing[*]}; run make deps as root (or install them)" >&2
  exit 1
fi
echo "apt-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Packages such as mariadb-server start their service on install; furet only needs their
# binaries on this machine (tests start their own servers), so no service starts here.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "apt-deps: done"
