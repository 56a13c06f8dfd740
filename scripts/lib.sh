# Shared helpers for the scripts in this folder. Source it; do not run it.
# Every local file (cluster, configuration, keys, witness copies, backups) lives
# under $OSMOSE_STATE, which is .osmose/ at the repository root and ignored by git.

set -euo pipefail

OSMOSE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OSMOSE_STATE="$OSMOSE_ROOT/.osmose"
mkdir -p "$OSMOSE_STATE"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Debian packages the suite needs to build, test and run.
OSMOSE_APT_PACKAGES=(libssl-dev libpq-dev libarchive-dev libzstd-dev postgresql postgresql-contrib pkg-config systemd curl python3 libcurl4 age libarchive-tools libqrencode-dev)
# The console's tests: zbarimg decodes its QR codes; chromium and its driver run the browser tests.
OSMOSE_TEST_PACKAGES=(zbar-tools chromium chromium-driver fonts-dejavu-core)

apt_updated=0
# Installs the named Debian packages that are missing. Quiet when nothing is missing.
ensure_packages() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]}: run as root or install them with apt-get"
    say "installing ${missing[*]}"
    if [ $apt_updated -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        apt_updated=1
    fi
    # The postgresql package's own cluster is never used; policy-rc.d keeps it from starting.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
}

# The independent implementation of the C2SP formats and RFC 9162 algorithms that
# scripts/interop/verify-c2sp.py (tests and demo) checks the journal's artefacts
# with. It declares Python ≥ 3.12 but runs on Debian 12's 3.11.
AICS_TLOG_VERSION=0.2.1
ensure_interop_verifier() {
    python3 -c "import aics_tlog" 2>/dev/null && return 0
    python3 -m pip --version >/dev/null 2>&1 || ensure_packages python3-pip
    say "installing aics-tlog $AICS_TLOG_VERSION (independent C2SP verifier) from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check --ignore-requires-python --break-system-packages "aics-tlog==$AICS_TLOG_VERSION" 2>/dev/null \
        || python3 -m pip install --quiet --disable-pip-version-check --ignore-requires-python "aics-tlog==$AICS_TLOG_VERSION" \
        || die "could not install aics-tlog from PyPI"
}

# Selenium (PyPI) drives chromium in the console's browser tests (Tests/BrowserTests).
SELENIUM_VERSION=4.51.0
ensure_selenium() {
    python3 -c "import selenium" 2>/dev/null && return 0
    python3 -m pip --version >/dev/null 2>&1 || ensure_packages python3-pip
    say "installing selenium $SELENIUM_VERSION from PyPI (browser tests)"
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "selenium==$SELENIUM_VERSION" 2>/dev/null \
        || python3 -m pip install --quiet --disable-pip-version-check "selenium==$SELENIUM_VERSION" \
        || die "could not install selenium from PyPI"
}

# The directory of the newest PostgreSQL server binaries installed.
postgres_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
    echo "$dir"
}

# Where the throwaway cluster lives: under .osmose/ when the postgres user can reach
# it, else under /var/tmp (a checkout under /root is mode 0700), recorded in .osmose/.
cluster_dir() {
    if [ -f "$OSMOSE_STATE/pg-location" ]; then
        cat "$OSMOSE_STATE/pg-location"
        return
    fi
    local dir="$OSMOSE_STATE/pg"
    if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$OSMOSE_STATE" 2>/dev/null; then
        dir="/var/tmp/osmose-$(printf '%s' "$OSMOSE_ROOT" | sha256sum | cut -c1-12)"
    fi
    echo "$dir" > "$OSMOSE_STATE/pg-location"
    echo "$dir"
}

# Runs a command as the cluster's owner: postgres when we are root, else ourselves.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The build folder's executables.
build_bin() { echo "$OSMOSE_ROOT/.build/debug"; }
