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
# tshark to read the pcap of sampled drops (netns-tests/events.test.ts), hping3 for the SYN-flood test.
RUN_PACKAGES=(bpftool iproute2 util-linux iputils-ping tcpdump xdp-tools systemd prometheus chromium tmux tshark hping3)
# The benchmark's veth suite compares against these peers (npm run bench); the CrowdSec
# benchmark (bench/crowdsec.ts) against Debian's nftables bouncer.
BENCH_PACKAGES=(nftables iptables crowdsec-firewall-bouncer)
# Integrations tested with the real programs: CrowdSec's Local API (crowdsec, with cscli) and fail2ban.
# Tests run their own private instances; the packages' system services are kept stopped (below).
INTEGRATION_PACKAGES=(crowdsec fail2ban)
SERVICES=(crowdsec crowdsec-firewall-bouncer fail2ban)

die() { echo "setup: $*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root (packages, bpffs, network namespaces)"
command -v node >/dev/null || die "Node.js >= 20.12 is needed (Debian's nodejs 18 is too old)"
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 12) ? 0 : 1)' \
  || die "Node.js >= 20.12 is needed, found $(node --version)"

missing=()
for package in "${BUILD_PACKAGES[@]}" "${RUN_PACKAGES[@]}" "${BENCH_PACKAGES[@]}" "${INTEGRATION_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # crowdsec offline (its README.Debian): a Central API credentials file holding only a comment,
  # made before the package is installed, keeps it from registering online.
  if [[ ! -e /etc/crowdsec/online_api_credentials.yaml ]]; then
    mkdir -p /etc/crowdsec
    echo '# Central API disabled: this host runs the CrowdSec Local API offline' >/etc/crowdsec/online_api_credentials.yaml
  fi
  # No package may start its service while installing (fail2ban's default sshd jail would add
  # iptables rules, the firewall bouncer nftables rules, in this host's namespace).
  own_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  apt-get update
  status=0
  apt-get install -y --no-install-recommends "${missing[@]}" || status=$?
  if ((own_policy)); then rm -f /usr/sbin/policy-rc.d; fi
  ((status == 0)) || die "apt-get install failed ($status)"
fi
# The tests start private crowdsec and fail2ban instances; the system services stay off.
if [[ -d /run/systemd/system ]]; then
  for service in "${SERVICES[@]}"; do
    if systemctl is-enabled --quiet "$service" 2>/dev/null || systemctl is-active --quiet "$service" 2>/dev/null; then
      echo "setup: stopping and disabling $service (tests run their own instance)"
      systemctl disable --now "$service" || true
    fi
  done
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
