#!/usr/bin/env bash
# Benchmark (not a test): 1 GiB files through Coffer and through nginx (TLS, sendfile, PUT
# via its DAV module) on loopback in the same run, alternating, for several rounds: median
# HTTPS download and upload MB/s with their Coffer/nginx ratios, Coffer's resumable (tus)
# upload in one PATCH and in 64 MiB PATCHes next to its plain upload, the disk's own durable write
# speed for the same bytes (dd with fsync, no network: the ceiling for any upload that fsyncs),
# Coffer's peak RSS over the transfers, and authenticated list-files requests/s and p99
# latency at 64 connections (wrk; nginx serves the same JSON as a file).
#
# Usage: benches/files.sh [size_mib] [rounds]   (default 1024 and 3)
# Each round uploads a file of its own (no deduplication) after a `sync`, so neither server
# pays for the other's dirty pages. As root on Debian it installs nginx-light, curl and wrk
# when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
rounds=${2:-3}

for tool in nginx curl wrk; do
  if ! command -v "$tool" >/dev/null; then
    [[ $(id -u) -eq 0 ]] || { echo "needs nginx, curl and wrk (run as root to install them)" >&2; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light curl wrk >/dev/null
    break
  fi
done
cargo build --release --locked -q
coffer=$PWD/target/release/coffer
work=$(mktemp -d /var/tmp/coffer-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
coffer_port=18643 nginx_port=18644

# Each upload has contents of its own: none is a deduplicated re-upload of another.
for round in $(seq "$rounds"); do
  for kind in payload tus tuschunks; do head -c "$((size_mib << 20))" /dev/urandom > "$work/$kind$round"; done
done
cat > "$work/coffer.toml" <<TOML
[server]
listen = ["127.0.0.1:$coffer_port"]
[storage]
state_dir = "$work/coffer-state"
disk_reserve = "1 MiB"
max_file_size = "$((size_mib + 1)) MiB"
[log]
level = "warn"
# The list-files measurement is one account at full speed: no rate limit may answer it.
[rate_limits]
api_per_minute = 100000000
api_burst = 100000000
TOML
"$coffer" serve --config "$work/coffer.toml" 2>"$work/coffer.log" &
coffer_pid=$!
until curl -ksf -o /dev/null "https://127.0.0.1:$coffer_port/api/v1/health"; do :; done
password=$(cat "$work/coffer-state/initial-admin-password")
token=$(curl -ks "https://127.0.0.1:$coffer_port/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$password\"}" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')

mkdir -p "$work/www/upload" "$work/nginx-tmp"
# nginx's workers run as an unprivileged user: let them read the payload and write uploads.
chmod 755 "$work" "$work/www"
chmod 644 "$work"/payload*
chmod 777 "$work/www/upload" "$work/nginx-tmp"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=localhost \
  -keyout "$work/nginx.key" -out "$work/nginx.crt" 2>/dev/null
ln "$work/payload1" "$work/www/payload"
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log stderr error;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $work/nginx-tmp;
  server {
    listen 127.0.0.1:$nginx_port ssl http2;
    ssl_certificate $work/nginx.crt;
    ssl_certificate_key $work/nginx.key;
    root $work/www;
    location /upload/ { dav_methods PUT; client_max_body_size 0; create_full_put_path on; }
  }
}
NGINX
nginx -e stderr -c "$work/nginx.conf" -g 'daemon off;' &
until curl -ksf -o /dev/null "https://127.0.0.1:$nginx_port/payload" -r 0-0; do :; done

# A resumable upload with curl, as tus clients do it: POST the length and name, then PATCH
# chunks of $2 bytes at the offsets the server confirms. The chunks are cut into files first
# (untimed), so every PATCH streams a file as the plain upload does. Prints bytes per second.
tus_upload() {
  local payload=$1 chunk=$2 name=$3 size offset=0 location start piece
  size=$(stat -c %s "$payload")
  rm -rf "$work/chunks" && mkdir "$work/chunks"
  if ((chunk >= size)); then ln "$payload" "$work/chunks/x"; else split -b "$chunk" -a 4 "$payload" "$work/chunks/x"; fi
  sync
  start=$(date +%s.%N)
  location=$(curl -ks -o /dev/null -D - -X POST -H "authorization: Bearer $token" -H 'tus-resumable: 1.0.0' \
    -H "upload-length: $size" -H "upload-metadata: filename $(printf %s "$name" | base64 -w0)" \
    "https://127.0.0.1:$coffer_port/api/v1/uploads" | tr -d '\r' | awk -F': ' 'tolower($1) == "location" {print $2}')
  for piece in "$work"/chunks/x*; do
    offset=$(curl -ks -o /dev/null -D - -X PATCH -T "$piece" -H "authorization: Bearer $token" \
      -H 'tus-resumable: 1.0.0' -H "upload-offset: $offset" -H 'content-type: application/offset+octet-stream' \
      "https://127.0.0.1:$coffer_port$location" | tr -d '\r' | awk -F': ' 'tolower($1) == "upload-offset" {print $2}')
    [[ -n $offset ]] || { echo "a resumable upload's PATCH failed" >&2; exit 1; }
  done
  awk -v start="$start" -v end="$(date +%s.%N)" -v bytes="$size" 'BEGIN { print bytes / (end - start) }'
  rm -rf "$work/chunks"
}

mbps() { awk -v bytes_per_s="$1" 'BEGIN { printf "%.0f", bytes_per_s / 1048576 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# Peak RSS from here on: the transfers, not start-up or the login's password hash.
echo 5 > "/proc/$coffer_pid/clear_refs"
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
c_ups=() n_ups=() c_downs=() n_downs=() dd_writes=() t_ups=() t_chunked=()
for round in $(seq "$rounds"); do
  payload=$work/payload$round
  sync
  c_ups+=("$(curl -ks -o "$work/meta.json" -w '%{speed_upload}' -X PUT -T "$payload" -H "authorization: Bearer $token" \
    "https://127.0.0.1:$coffer_port/api/v1/files/upload?name=payload$round")")
  file_id=$(sed -E 's/.*"id":"([^"]+)".*/\1/' "$work/meta.json")
  sync
  n_ups+=("$(curl -ks -o /dev/null -w '%{speed_upload}' -T "$payload" "https://127.0.0.1:$nginx_port/upload/payload")")
  rm -f "$work/www/upload/payload"
  t_ups+=("$(tus_upload "$work/tus$round" "$((size_mib << 20))" "tus$round")")
  t_chunked+=("$(tus_upload "$work/tuschunks$round" "$((64 << 20))" "tuschunks$round")")
  sync
  start=$(date +%s.%N)
  dd if="$payload" of="$work/dd-write" bs=1M conv=fsync status=none
  dd_writes+=("$(awk -v start="$start" -v end="$(date +%s.%N)" -v bytes="$((size_mib << 20))" 'BEGIN { print bytes / (end - start) }')")
  rm -f "$work/dd-write"
  c_downs+=("$(curl -ks -o /dev/null -w '%{speed_download}' -H "authorization: Bearer $token" \
    "https://127.0.0.1:$coffer_port/api/v1/files/$file_id/content")")
  n_downs+=("$(curl -ks -o /dev/null -w '%{speed_download}' "https://127.0.0.1:$nginx_port/payload")")
done
c_up=$(median "${c_ups[@]}") n_up=$(median "${n_ups[@]}") dd_write=$(median "${dd_writes[@]}")
t_up=$(median "${t_ups[@]}") t_chunk=$(median "${t_chunked[@]}")
c_down=$(median "${c_downs[@]}") n_down=$(median "${n_downs[@]}")
peak_kib=$(awk '/^VmHWM/ {print $2}' "/proc/$coffer_pid/status")

curl -ks -H "authorization: Bearer $token" "https://127.0.0.1:$coffer_port/api/v1/files" > "$work/www/files.json"
# Requests/s, p99 and how many answers were not 2xx (which would not count as served).
wrk_line() {
  wrk -t2 -c64 -d10s --latency "$@" 2>/dev/null |
    awk '/Requests\/sec/ {rps=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$NF} END {print rps, p99, bad + 0}'
}
read -r c_rps c_p99 c_bad < <(wrk_line -H "authorization: Bearer $token" "https://127.0.0.1:$coffer_port/api/v1/files")
read -r n_rps n_p99 n_bad < <(wrk_line "https://127.0.0.1:$nginx_port/files.json")
((c_bad == 0 && n_bad == 0)) || { echo "list files: $c_bad (coffer) and $n_bad (nginx) answers were not 2xx" >&2; exit 1; }

all_mbps() { for value in "$@"; do printf ' %s' "$(mbps "$value")"; done; }
echo "${size_mib} MiB over HTTPS on loopback, median of $rounds rounds"
echo "                                       coffer      nginx     coffer/nginx"
printf 'download MB/s                        %8s   %8s   %6s (goal >= 1.0)\n' "$(mbps "$c_down")" "$(mbps "$n_down")" "$(ratio "$c_down" "$n_down")"
printf 'upload MB/s (coffer hashes, fsyncs)  %8s   %8s   %6s (goal >= 0.9)\n' "$(mbps "$c_up")" "$(mbps "$n_up")" "$(ratio "$c_up" "$n_up")"
printf 'resumable upload, 1 PATCH, MB/s      %8s              resumable/plain %s (goal >= 0.9)\n' "$(mbps "$t_up")" "$(ratio "$t_up" "$c_up")"
printf 'resumable upload, 64 MiB PATCHes     %8s              resumable/plain %s (goal >= 0.9)\n' "$(mbps "$t_chunk")" "$(ratio "$t_chunk" "$c_up")"
printf 'disk alone: dd + fsync, MB/s         %8s              coffer upload/dd %s\n' "$(mbps "$dd_write")" "$(ratio "$c_up" "$dd_write")"
printf 'uploads by round, MB/s: coffer%s; nginx%s; resumable%s; resumable in chunks%s; dd%s\n' "$(all_mbps "${c_ups[@]}")" \
  "$(all_mbps "${n_ups[@]}")" "$(all_mbps "${t_ups[@]}")" "$(all_mbps "${t_chunked[@]}")" "$(all_mbps "${dd_writes[@]}")"
printf 'coffer peak RSS over the transfers   %6s MiB                      (goal <= 64)\n' "$((peak_kib / 1024))"
printf 'list files, 64 connections req/s    %8s   %8s   (nginx: the same JSON as a static file)\n' "$c_rps" "$n_rps"
printf 'list files p99                       %8s   %8s\n' "$c_p99" "$n_p99"
