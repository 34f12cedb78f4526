#!/usr/bin/env bash
# Prepares a fresh Debian (12, bookworm) machine, as root, to build and test the project.
#
# Idempotent: when every Debian package below is installed already, apt is not run at all, so a
# rerun takes a moment. It never downloads toolchains by itself: the Rust toolchain (cargo, by
# rustup) must already be on the machine.
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }

# Debian packages, each with why the project needs it. Every name was checked against Debian 12's
# archive (`apt-cache policy NAME`).
PACKAGES=(
    git              # sources, and `policyc` reads Git checkouts
    ca-certificates  # TLS for cargo's registry
    build-essential  # cc and make for crates that build C
    pkg-config       # finds system libraries for -sys crates
    clang            # compiles the C eBPF programs (enforcer/bpf/)
    llvm             # llvm-strip and llvm-objdump for BPF objects
    libbpf-dev       # bpf/bpf_helpers.h for the eBPF programs
    bpftool          # inspects loaded programs and pinned maps
    iproute2         # ip netns, veth, tc: the end-to-end test topology
    iputils-ping     # ping between pods in the CNI plugin's tests
    containernetworking-plugins  # host-local and static IPAM under /usr/lib/cni, which
                     # policy-cni delegates addresses to (its tests run host-local)
    iptables         # baseline for the datapath benchmarks
    nftables         # baseline for the datapath benchmarks
    dnsmasq-base     # a real DNS server for the DNS proxy tests (the binary only: the `dnsmasq`
                     # package would also start a system-wide service on port 53)
    curl             # HTTP client for the L7 end-to-end tests
    iperf3           # traffic generator for the datapath tests and benchmarks
    etcd-server      # the kvstore for identity allocation in kvstore mode
)

if [ "$(id -u)" -ne 0 ]; then
    log "error: run as root (apt-get install needs it)"
    exit 2
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    log "all ${#PACKAGES[@]} Debian packages are installed; skipping apt"
else
    log "missing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Packages such as etcd-server start a system service when installed. Tests start their own
    # servers on their own addresses, so keep services from starting while we install, unless the
    # machine already has a policy of its own (containers usually do).
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        log "writing a temporary $policy so that installed services do not start"
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"; log "removed the temporary $policy"' EXIT
    fi
    log "running: apt-get update"
    apt-get update
    log "running: apt-get install -y --no-install-recommends ${missing[*]}"
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The Rust toolchain comes from rustup, which this script does not install.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
    log "note: cargo is in $HOME/.cargo/bin, which is not on PATH; add it to run cargo yourself"
fi
if ! command -v cargo >/dev/null 2>&1; then
    log "error: cargo not found. Install a Rust toolchain (rustup, stable) and put cargo on PATH;"
    log "       this script does not download toolchains."
    exit 1
fi
log "rust toolchain: $(cargo --version), $(rustc --version 2>/dev/null || echo 'rustc not found')"
log "done"
