#!/usr/bin/env bash
# Benchmark (not a test): time from process start to the first successful health request
# over HTTPS, and resident memory when idle, for Coffer and for nginx (TLS, one worker,
# answering the same path) side by side in one run on loopback.
#
# Usage: benches/startup.sh [runs]   (default 7; prints medians)
# As root on Debian it installs nginx-light and curl when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-7}

if ! command -v nginx >/dev/null || ! command -v curl >/dev/null; then
  [[ $(id -u) -eq 0 ]] || { echo "needs nginx and curl (run as root to install them)" >&2; exit 1; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light curl >/dev/null
fi
cargo build --release --locked -q
coffer=$PWD/target/release/coffer
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

now_ns() { date +%s%N; }
# Polls until the URL answers 200; prints milliseconds since $1 (ns).
until_healthy() {
  local started=$1 url=$2
  until curl -ksf -o /dev/null "$url"; do :; done
  echo $(( ($(now_ns) - started) / 1000000 ))
}
# Resident set of a process and its children, in KiB.
rss_kib() {
  local total=0 pid
  for pid in $1 $(pgrep -P "$1" || true); do
    total=$(( total + $(awk '/^VmRSS/ {print $2}' "/proc/$pid/status") ))
  done
  echo "$total"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

port=18543
cat > "$work/coffer.toml" <<TOML
[server]
listen = ["127.0.0.1:$port"]
[log]
level = "warn"
TOML

cold=() warm=() coffer_rss=()
for run in $(seq "$runs"); do
  state="$work/state-$run"
  for phase in cold warm; do
    started=$(now_ns)
    COFFER_STORAGE__STATE_DIR=$state "$coffer" serve --config "$work/coffer.toml" 2>/dev/null &
    pid=$!
    ms=$(until_healthy "$started" "https://127.0.0.1:$port/api/v1/health")
    if [[ $phase == cold ]]; then cold+=("$ms"); else warm+=("$ms"); fi
    for _ in $(seq 100); do curl -ksf -o /dev/null "https://127.0.0.1:$port/api/v1/health"; done
    [[ $phase == warm ]] && coffer_rss+=("$(rss_kib "$pid")")
    kill -TERM "$pid"; wait "$pid" || true
  done
done

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=localhost \
  -keyout "$work/nginx.key" -out "$work/nginx.crt" 2>/dev/null
mkdir -p "$work/nginx"
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log stderr error;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx;
  server {
    listen 127.0.0.1:$port ssl http2;
    ssl_certificate $work/nginx.crt;
    ssl_certificate_key $work/nginx.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location = /api/v1/health { default_type application/json; return 200 '{"status":"ok"}'; }
  }
}
NGINX
nginx_start=() nginx_rss=()
for run in $(seq "$runs"); do
  started=$(now_ns)
  nginx -e stderr -c "$work/nginx.conf" -g 'daemon off;' &
  pid=$!
  nginx_start+=("$(until_healthy "$started" "https://127.0.0.1:$port/api/v1/health")")
  for _ in $(seq 100); do curl -ksf -o /dev/null "https://127.0.0.1:$port/api/v1/health"; done
  nginx_rss+=("$(rss_kib "$pid")")
  kill -QUIT "$pid"; wait "$pid" || true
done

c_cold=$(printf '%s\n' "${cold[@]}" | median)
c_warm=$(printf '%s\n' "${warm[@]}" | median)
c_rss=$(printf '%s\n' "${coffer_rss[@]}" | median)
n_start=$(printf '%s\n' "${nginx_start[@]}" | median)
n_rss=$(printf '%s\n' "${nginx_rss[@]}" | median)
echo "median of $runs runs                 coffer        nginx"
printf 'start to first health (first start)  %6s ms\n' "$c_cold"
printf 'start to first health (restart)      %6s ms   %6s ms\n' "$c_warm" "$n_start"
printf 'idle RSS after 100 requests          %6s KiB  %6s KiB\n' "$c_rss" "$n_rss"
