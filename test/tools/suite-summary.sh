#!/usr/bin/env bash
# suite-summary.sh DIR: adds up the *.tally files that the reliability and security suite's
# tests wrote into DIR (see test/support/suite.hpp), prints the suite's one summary line,
# also writes it to DIR/SUMMARY, and exits 1 if any leak or isolation breach was found or
# an injected fault did not end in a recovery, or an attack of the hardening review was not held. `reset` as the first argument empties DIR.
set -euo pipefail
if [[ ${1:-} == reset ]]; then
    dir=${2:?usage: suite-summary.sh reset DIR}
    rm -rf "$dir" && mkdir -p "$dir"
    exit 0
fi
dir=${1:?usage: suite-summary.sh DIR}
shopt -s nullglob
files=("$dir"/*.tally)
if ((${#files[@]} == 0)); then
    echo "suite: no suite tests ran (nothing in $dir)" | tee "$dir/SUMMARY" >&2
    exit 1
fi
read -r inputs faults recoveries scanned leaks routes breaches attacks held < <(
    awk '{ n[$1] += $2 } END {
        printf "%d %d %d %d %d %d %d %d %d\n", n["inputs"], n["faults"], n["recoveries"], n["scanned"],
               n["leaks"], n["routes"], n["breaches"], n["attacks"], n["held"] }' "${files[@]}")
line="suite: ${inputs} bad inputs tried, ${faults} faults injected, ${recoveries} recoveries, ${leaks} leaks found (${scanned} places scanned), ${breaches} isolation breaches (${routes} routes tried), ${held} of ${attacks} attacks held; ${#files[@]} tests"
echo "$line" | tee "$dir/SUMMARY"
status=0
if ((leaks > 0)); then echo "suite: FAIL: a secret leaked; see the tests that failed above" >&2; status=1; fi
if ((breaches > 0)); then echo "suite: FAIL: a tenant reached another tenant's data" >&2; status=1; fi
if ((held < attacks)); then echo "suite: FAIL: $((attacks - held)) attacks of the hardening review succeeded" >&2; status=1; fi
if ((recoveries < faults)); then echo "suite: FAIL: $((faults - recoveries)) injected faults did not end in working credentials" >&2; status=1; fi
exit $status
