#!/usr/bin/env bash
# Asserts that each BINARY is a statically linked ELF executable: no PT_INTERP program
# header (no dynamic loader) and no DT_NEEDED entries (no shared libraries). Static-PIE
# passes too. Prints one line per file with its size; exits 1 if any file fails.
#
# Usage: tools/check-static.sh BINARY...
set -euo pipefail

if (($# == 0)); then
  echo "usage: $0 BINARY..." >&2
  exit 2
fi
command -v readelf >/dev/null || { echo "check-static: readelf not found (apt-get install binutils)" >&2; exit 2; }

rc=0
for f in "$@"; do
  fail() { printf 'check-static: FAIL %s: %s\n' "$f" "$*" >&2; rc=1; }
  if [[ ! -f $f ]]; then fail "no such file"; continue; fi
  if ! header=$(LC_ALL=C readelf -h "$f" 2>/dev/null); then fail "not an ELF file"; continue; fi
  type=$(awk -F: '/^ *Type:/ { sub(/^ +/, "", $2); print $2 }' <<<"$header")
  case $type in
    EXEC*) kind="static" ;;
    DYN*) kind="static-pie" ;;
    *) fail "not an executable (ELF type: $type)"; continue ;;
  esac
  phdrs=$(LC_ALL=C readelf -lW "$f" 2>/dev/null)
  dynamic=$(LC_ALL=C readelf -dW "$f" 2>/dev/null)
  interp=$(grep -o 'Requesting program interpreter: [^]]*' <<<"$phdrs" || true)
  needed=$(grep -o 'Shared library: \[[^]]*\]' <<<"$dynamic" | sed 's/Shared library: //' | tr '\n' ' ' || true)
  if [[ $phdrs == *" INTERP "* || -n $interp ]]; then
    fail "has a program interpreter (${interp#Requesting program interpreter: }); NEEDED: ${needed:-none}"
    continue
  fi
  if [[ -n $needed ]]; then fail "needs shared libraries: $needed"; continue; fi
  # ldd as a second opinion (it says "not a dynamic executable" / "statically linked").
  ldd_out=$(LC_ALL=C ldd "$f" 2>&1 || true)
  if [[ $ldd_out != *"not a dynamic executable"* && $ldd_out != *"statically linked"* ]]; then
    fail "ldd disagrees: $ldd_out"
    continue
  fi
  size=$(stat -c %s "$f")
  printf 'check-static: OK %s: %s ELF executable, %s bytes (%s)\n' \
    "$f" "$kind" "$size" "$(numfmt --to=iec-i --suffix=B "$size")"
done
exit "$rc"
