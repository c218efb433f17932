#!/usr/bin/env bash
# Prepares a Debian 12 host (as root, with Node >= 20.12 already installed) to
# build, run and test xdpwall: Debian packages, bpffs, npm dependencies, build.
# Safe to run again: it installs only missing packages and rebuilds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Build: BPF object (clang, llvm), native addon over the shared libbpf.
BUILD_PACKAGES=(clang llvm libbpf-dev libelf-dev zlib1g-dev build-essential pkg-config python3)
# Run and test: namespaces and veth (iproute2, util-linux nsenter), ping, bpftool,
# systemd-analyze and promtool for the offline deploy/ and metrics checks,
# chromium (driven headless by playwright-core) for the dashboard test, tmux for `xdpwall top`,
# tshark to read the pcap of sampled drops (netns-tests/events.test.ts).
RUN_PACKAGES=(bpftool iproute2 util-linux iputils-ping tcpdump xdp-tools systemd prometheus chromium tmux tshark)
# The benchmark's veth suite compares against these peers (npm run bench).
BENCH_PACKAGES=(nftables iptables)

die() { echo "setup: $*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root (packages, bpffs, network namespaces)"
command -v node >/dev/null || die "Node.js >= 20.12 is needed (Debian's nodejs 18 is too old)"
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 12) ? 0 : 1)' \
  || die "Node.js >= 20.12 is needed, found $(node --version)"

missing=()
for package in "${BUILD_PACKAGES[@]}" "${RUN_PACKAGES[@]}" "${BENCH_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The daemon mounts bpffs itself when missing; tools and tests expect it too.
# Mode 0700: pinned maps are root's (or the daemon user's, under /sys/fs/bpf/xdpwall), no one else's.
mountpoint -q /sys/fs/bpf || mount -t bpf -o mode=0700 bpf /sys/fs/bpf

# node-gyp: use this Node's own headers instead of downloading them.
node_prefix=$(node -p 'require("node:path").resolve(process.execPath, "../..")')
if [[ -f $node_prefix/include/node/node_api.h ]]; then
  export npm_config_nodedir=$node_prefix
fi

npm ci
npm run build
echo "setup: built. Try: npx xdpwall lab up   (or: npm test)"
