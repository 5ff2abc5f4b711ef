#!/usr/bin/env bash
# Regenerates the README's config reference section from the schema (after `npm run build`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ref="$(node dist/src/cli.js config-reference)"
REF="$ref" python3 - <<'PY'
import os, re
p = 'README.md'
s = open(p).read()
start, end = '<!-- config-reference:start -->', '<!-- config-reference:end -->'
i, j = s.index(start) + len(start), s.index(end)
open(p, 'w').write(s[:i] + '\n' + os.environ['REF'].rstrip('\n') + '\n' + s[j:])
PY
