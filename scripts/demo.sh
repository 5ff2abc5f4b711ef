#!/usr/bin/env bash
# The demo: a client/router/server namespace topology, nfsessiond on the router, real traffic,
# then the session table. Run through `npm run demo` (which bootstraps the machine first).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec node dist/src/cli.js demo "$@"
