#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: installs the Debian packages weft's tests and demo use
# (only those missing) and the npm dependencies. When it cannot install (not root, not Debian), it prints the
# exact command to run and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(etcd-server etcd-client containernetworking-plugins iproute2 iptables nftables iperf3 iputils-ping tcpdump openssl procps curl python3 make g++ systemd clang libclang-rt-14-dev wireguard-go wireguard-tools)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
# The kube tests drive the test API server with kubectl as a user would. Any kubectl on the PATH will do (the
# `kubectl` package of Kubernetes' or Google's apt repository); Debian 12's own package for it is kubernetes-client.
if ! command -v kubectl >/dev/null 2>&1; then
  missing+=(kubernetes-client)
fi

if ((${#missing[@]} > 0)); then
  cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  if [[ ! -f /etc/debian_version ]]; then
    echo "weft setup: this is not Debian; install the equivalents of: ${missing[*]}" >&2
    exit 1
  fi
  if [[ $(id -u) -ne 0 ]]; then
    echo "weft setup: missing Debian packages: ${missing[*]}" >&2
    echo "run as root:  $cmd" >&2
    exit 1
  fi
  echo "weft setup: installing ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's etcd-server package starts a system etcd on 127.0.0.1:2379; weft's tests start their own on free
# ports and never use it, so leave it alone.

# npm dependencies: install when absent or older than the lock file.
if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "weft setup: npm ci"
  npm ci --no-audit --no-fund >/dev/null
fi
