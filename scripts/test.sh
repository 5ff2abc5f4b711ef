#!/usr/bin/env bash
# The full test suite: type check, then every tap test (unit tests on the engine, codecs and
# config; end-to-end tests in network namespaces with real peers). Run through `npm test`, which
# first runs scripts/bootstrap.sh (packages, npm ci, native build, tsc).
# Prints a closing "N passed, N failed" line and exits non-zero on any failure.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

echo "== type check"
if ! npx --no-install tsc -p tsconfig.json --noEmit; then
  echo "0 passed, 1 failed"
  exit 1
fi

echo "== tap"
log="$(mktemp)"
# Unit tests first (fast feedback), then end-to-end; tap runs files in parallel (jobs in package.json).
npx --no-install tap "$@" test/unit/*.test.ts test/e2e/*.test.ts 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

# tap's summary is '# { total: T, pass: P, fail: F, ... }'; print the plain line CI reads.
summary="$(grep -E '^# \{ total: ' "$log" | tail -n 1)"
# CI keeps only the tail of the output, which the coverage table fills: repeat every failed
# assertion there, with its file and the first lines of its diagnostic.
failures="$(awk '
  /^# Subtest: test\// { file = $3 }
  /^ *not ok / && !/# (SKIP|TODO)/ { inyaml = 1; indiff = 0; shown = 0; sub(/^ +/, ""); print "FAILED " file ": " $0; next }
  inyaml && /^ *\.\.\.$/ { inyaml = 0 }
  inyaml && /diff: \|/ { indiff = 1 }
  inyaml && shown < 6 && (/(lineNumber|message|found|wanted|error|code):/ || (indiff && /^ +[-+][^-+]/)) { sub(/^ +/, ""); print "    " $0; shown++ }
' "$log" | head -n 120)"
if [ -n "$failures" ]; then
  echo "== failed assertions"
  echo "$failures"
fi
rm -f "$log"
total=$(sed -nE 's/.*total: ([0-9]+).*/\1/p' <<<"$summary")
fail=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")
pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
fail=${fail:-0}
pass=${pass:-0}
if [ -z "$total" ]; then
  echo "0 passed, 1 failed"
  exit 1
fi
if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
echo "${pass} passed, ${fail} failed"
exit "$rc"
