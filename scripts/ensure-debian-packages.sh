#!/usr/bin/env bash
# Install the Debian packages named as arguments that are not installed yet; leave the rest alone.
set -euo pipefail

if [ "$#" -eq 0 ]; then
  echo "usage: $0 PACKAGE..." >&2
  exit 2
fi

if ! command -v dpkg >/dev/null || ! command -v apt-get >/dev/null; then
  echo "ensure-debian-packages: apt-get/dpkg not found; install by hand: $*" >&2
  exit 1
fi

installed() {  # package
  # dpkg -s also succeeds for a removed package whose configuration files remain
  local status
  status="$(dpkg -s "$1" 2>/dev/null)" || return 1
  grep -qx 'Status: install ok installed' <<<"$status"
}

missing=()
for package in "$@"; do
  installed "$package" || missing+=("$package")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "ensure-debian-packages: already installed: $*"
  exit 0
fi

# sudo resets the environment, so the non-interactive frontend goes through env
as_root=(env DEBIAN_FRONTEND=noninteractive)
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "ensure-debian-packages: not root and no sudo; as root run: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  as_root=(sudo -n "${as_root[@]}")  # -n: fail rather than wait for a password nobody types
fi

echo "ensure-debian-packages: installing ${missing[*]}"
echo "ensure-debian-packages: apt-get update"
if ! "${as_root[@]}" apt-get update -q; then
  echo "ensure-debian-packages: apt-get update failed; is a Debian package mirror reachable?" >&2
  exit 1
fi
if ! "${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  echo "ensure-debian-packages: apt-get install failed for: ${missing[*]}" >&2
  exit 1
fi
echo "ensure-debian-packages: installed ${missing[*]}"
