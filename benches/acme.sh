#!/usr/bin/env bash
# Benchmark (not a test): time from process start to serving a valid ACME certificate, for
# Coffer and for Caddy, against the same Pebble in one run on loopback (TLS-ALPN-01; each
# run starts from an empty state, so each one orders a certificate).
#
# Usage: benches/acme.sh [runs]   (default 5; prints medians)
# As root on Debian it installs pebble, caddy, curl and openssl when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}

for tool in pebble caddy curl openssl; do
  if ! command -v "$tool" >/dev/null; then
    [[ $(id -u) -eq 0 ]] || { echo "needs pebble, caddy, curl and openssl (run as root to install them)" >&2; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pebble caddy curl openssl >/dev/null
  fi
done
cargo build --release --locked -q
coffer=$PWD/target/release/coffer
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
domain=coffer.test
port=18743 api=18744 mgmt=18745 dns=18746 challmgmt=18747 http=18748

# A CA for Pebble's own HTTPS listener (the package ships none).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout "$work/pebble.key" -out "$work/pebble.csr" 2>/dev/null
openssl x509 -req -in "$work/pebble.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
  -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1') -out "$work/pebble.pem" 2>/dev/null
cat > "$work/pebble.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:$api", "managementListenAddress": "127.0.0.1:$mgmt",
  "certificate": "$work/pebble.pem", "privateKey": "$work/pebble.key", "httpPort": $http,
  "tlsPort": $port, "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 "127.0.0.1:$dns" -http01 "" -https01 "" \
  -tlsalpn01 "" -management "127.0.0.1:$challmgmt" >/dev/null 2>&1 &
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 pebble -config "$work/pebble.json" -dnsserver "127.0.0.1:$dns" \
  >/dev/null 2>&1 &
until curl -sf --cacert "$work/ca.pem" -o /dev/null "https://127.0.0.1:$api/dir"; do :; done
curl -sf --cacert "$work/ca.pem" "https://127.0.0.1:$mgmt/roots/0" > "$work/issuer.pem"

now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Milliseconds from $1 (ns) until the domain answers over TLS with a certificate Pebble issued.
until_valid() {
  local started=$1 pid=$2
  until curl -s --cacert "$work/issuer.pem" --resolve "$domain:$port:127.0.0.1" -o /dev/null \
    "https://$domain:$port/"; do
    kill -0 "$pid" 2>/dev/null || { echo "the server exited; see its log in $work" >&2; exit 1; }
  done
  echo $(( ($(now_ns) - started) / 1000000 ))
}

coffer_run() {
  rm -rf "$work/coffer-state"
  cat > "$work/coffer.toml" <<TOML
[server]
listen = ["127.0.0.1:$port"]
[storage]
state_dir = "$work/coffer-state"
disk_reserve = "1 MiB"
[tls]
mode = "acme"
domains = ["$domain"]
[acme]
directory_url = "https://127.0.0.1:$api/dir"
ca_root = "$work/ca.pem"
[log]
level = "warn"
TOML
  local started pid
  started=$(now_ns)
  "$coffer" serve --config "$work/coffer.toml" 2>"$work/coffer.log" &
  pid=$!
  until_valid "$started" "$pid"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

caddy_run() {
  rm -rf "$work/caddy-data"
  cat > "$work/Caddyfile" <<CADDY
{
  admin off
  https_port $port
  http_port $http
  storage file_system $work/caddy-data
  skip_install_trust
  log {
    output discard
  }
}
$domain {
  tls {
    issuer acme {
      dir https://127.0.0.1:$api/dir
      trusted_roots $work/ca.pem
      disable_http_challenge
    }
  }
  respond "ok"
}
CADDY
  local started pid
  started=$(now_ns)
  XDG_DATA_HOME=$work/caddy-xdg caddy run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
  pid=$!
  until_valid "$started" "$pid"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

coffer_ms=() caddy_ms=()
for _ in $(seq "$runs"); do
  coffer_ms+=("$(coffer_run)")
  caddy_ms+=("$(caddy_run)")
done
c=$(printf '%s\n' "${coffer_ms[@]}" | median)
k=$(printf '%s\n' "${caddy_ms[@]}" | median)
printf '%-48s %8s %8s\n' "start to a valid certificate (median of $runs)" coffer caddy
printf '%-48s %6s ms %5s ms\n' "TLS-ALPN-01 against Pebble, empty state" "$c" "$k"
printf 'runs: coffer %s | caddy %s\n' "${coffer_ms[*]}" "${caddy_ms[*]}"
