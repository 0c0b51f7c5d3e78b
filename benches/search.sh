#!/usr/bin/env bash
# Benchmark (not a test): Coffer's search end to end over HTTPS, side by side with SQLite FTS5
# on the same synthetic corpus (default 100,000 files): p50/p99 of single-word, two-word and
# name-prefix queries with permission checks and highlights, Coffer's full rebuild (cold and
# warm text cache), change-to-searchable latency, and memory. See benches/search-bench.py.
#
# Usage: benches/search.sh [files] [reps]   (default 100000 and 3)
# As root on Debian it installs python3-numpy when missing. Needs about 2 GB in /var/tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-100000}
reps=${2:-3}
if ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  [[ $(id -u) -eq 0 ]] || { echo "needs python3-numpy (run as root to install it)" >&2; exit 1; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-numpy >/dev/null
fi
cargo build --release --locked -q
work=$(mktemp -d /var/tmp/coffer-search-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "$(date -u +%F) $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"), SQLite $(/usr/bin/python3 -c 'import sqlite3; print(sqlite3.sqlite_version)')"
N_DOCS=$files REPS=$reps /usr/bin/python3 benches/search-bench.py "$PWD/target/release/coffer" "$work/run"
cp "$work/search-bench-$files.json" "target/search-bench-$files.json" 2>/dev/null || true
