#!/usr/bin/env bash
# Installs what building and testing tenantdb needs on Debian 12, from Debian's packages.
# Safe to run again: apt-get skips what is installed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates openssl
  libpq-dev libmariadb-dev libcurl4-openssl-dev libssl-dev
  rapidjson-dev libboost-dev libyaml-cpp-dev libcli11-dev
  libgtest-dev libgmock-dev
  clang-format     # tools/check-format.sh: the house style (.clang-format) is checked in CI
  postgresql postgresql-client mariadb-server mariadb-client
  iproute2 util-linux procps
  libnss-systemd   # the static smoke test's NSS crash case (issue 12, finding 7)
)

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  sudo=(sudo)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# The package servers must not start system-wide database services: tests run their own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d
  trap '"${sudo[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
