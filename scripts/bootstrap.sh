#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine (root, Node 20 + npm present).
#  1. installs the Debian packages the project needs, only those missing;
#  2. checks that iptables uses the nf_tables backend;
#  3. `npm ci` when node_modules is missing or stale (also builds native/ via the root "install" script);
#  4. compiles TypeScript to dist/.
# Quiet on success; on failure prints what failed and the captured output.
set -euo pipefail

# Debian packages the project needs (one list; add new ones here).
APT_PACKAGES=(
  iproute2 iputils-ping nftables iptables conntrack iperf3 curl tcpdump
  libnetfilter-queue-dev libmnl-dev gcc g++ make python3
  # real peers for the helper tests, and the capture tools
  vsftpd lftp tftpd-hpa tftp-hpa sip-tester rpcbind python3-impacket tshark
  # the service tests (systemd-analyze verify/security; vagrant validate of the Vagrantfile, no provider needed)
  systemd vagrant
  # the real-systemd test: a Debian root built by debootstrap, booted by systemd-nspawn
  systemd-container debootstrap
)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

die() { echo "bootstrap: $*" >&2; exit 1; }

# Run a command quietly; on failure show its output and stop.
quiet() {
  local desc="$1"; shift
  local log
  log="$(mktemp)"
  if ! "$@" >"$log" 2>&1; then
    echo "bootstrap: $desc failed: $*" >&2
    tail -n 60 "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
}

[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages, uses network namespaces)"
command -v node >/dev/null || die "node is not installed (Node 20 expected)"
command -v npm >/dev/null || die "npm is not installed"

# --- 1. Debian packages ------------------------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
  [ "$status" = "installed" ] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # Server packages (vsftpd, tftpd-hpa, rpcbind) would start their daemons in the root namespace
  # on install; the tests start their own inside namespaces, so forbid service starts meanwhile.
  policy_rc=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy_rc" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy_rc"; chmod 755 "$policy_rc"; own_policy=1
  fi
  quiet "apt-get update" apt-get update -q
  quiet "apt-get install ${missing[*]}" \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  [ "$own_policy" -eq 0 ] || rm -f "$policy_rc"
fi

# --- 2. iptables must be iptables-nft (nft_compat carries the xt NFQUEUE target) ---------------
if ! iptables_v="$(iptables -V 2>&1)"; then
  die "iptables -V failed: $iptables_v"
fi
case "$iptables_v" in
  *nf_tables*) ;;
  *)
    die "iptables is not the nf_tables backend ('$iptables_v'). Fix with:
  update-alternatives --set iptables /usr/sbin/iptables-nft
  update-alternatives --set ip6tables /usr/sbin/ip6tables-nft" ;;
esac

# --- 3. npm dependencies (+ native/ build through the root "install" script) -------------------
export npm_config_nodedir=/usr
need_ci=0
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ]; then
  need_ci=1
elif [ package-lock.json -nt node_modules/.package-lock.json ]; then
  need_ci=1
fi
if [ "$need_ci" -eq 1 ]; then
  quiet "npm ci" npm ci --no-fund --no-audit
fi

# --- 4. TypeScript build -> dist/ --------------------------------------------------------------
quiet "TypeScript build (tsc -p tsconfig.build.json)" npx --no-install tsc -p tsconfig.build.json
