#!/usr/bin/env bash
# Install every Debian package that building, running and testing mod_claude
# needs. Idempotent: packages already present are not fetched again, so the
# README commands, CI and the Dockerfile can all call it unconditionally.
set -euo pipefail

PKGS=(
    # build
    build-essential apache2-dev libapr1-dev libaprutil1-dev
    libjansson-dev libyaml-dev libpq-dev libprotobuf-c-dev protobuf-c-compiler
    libcurl4-openssl-dev libssl-dev pkg-config clang-format
    # run
    apache2 libapache2-mod-auth-openidc postgresql postgresql-client
    # test
    check python3 python3-pytest python3-requests python3-yaml
    python3-jwt python3-cryptography curl tmux procps openssl
    # bench (bench/run.py, bench/profile.py)
    wrk nodejs linux-perf
)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#PKGS[@]} packages present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Debian starts services on install; our tests run their own instances.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
