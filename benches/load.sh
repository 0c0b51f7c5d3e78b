#!/usr/bin/env bash
# Benchmark (not a test): a mixed workload of many clients against Coffer over HTTPS on
# loopback, then the same mix against nginx serving static stand-ins, in the same run.
#
# The clients are split over one wrk per operation, all running at once, so each operation
# gets its own throughput and latency percentiles under the whole mix:
#   list      GET /api/v1/files (an access token)          nginx: the same JSON as a file
#   download  GET /api/v1/files/{id}/content, 64 KiB files  nginx: the same bytes as files
#   upload    PUT /api/v1/files/upload, 4 KiB, fsynced      nginx: DAV PUT
#   share     GET /s/{token}, the public landing page       nginx: the same page as a file
#   fetch     GET /s/{token}/download, anonymous, 64 KiB    nginx: the same bytes
#   sign-in   POST /api/v1/auth/login (argon2id)            nginx: -
# Reported: requests/s, p50 and p99 per operation, 5xx answers (wrk's Lua counts them) and
# database-busy errors in the log (goal: none), Coffer's RSS every 10 s (goal: flat after
# warm-up) and the size of its WAL (goal: bounded).
#
# Usage: benches/load.sh [seconds] [clients]   (default 300 and 200)
# As root on Debian it installs nginx-light, curl and wrk when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
clients=${2:-200}

for tool in nginx curl wrk; do
  if ! command -v "$tool" >/dev/null; then
    [[ $(id -u) -eq 0 ]] || { echo "needs nginx, curl and wrk (run as root to install them)" >&2; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light curl wrk >/dev/null
    break
  fi
done
cargo build --release --locked -q
coffer=$PWD/target/release/coffer
work=$(mktemp -d /var/tmp/coffer-load.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; [[ -n ${KEEP:-} ]] || rm -rf "$work"' EXIT
coffer_port=18653 nginx_port=18654
base=https://127.0.0.1:$coffer_port

# The clients by operation: mostly reads, as on a real server; sign-ins are few because each
# one is an argon2id hash by design.
signin=4
upload=$((clients / 10))
fetch=$((clients / 10))
share=$((clients / 5))
download=$((clients / 5))
list=$((clients - signin - upload - fetch - share - download))

cat > "$work/coffer.toml" <<TOML
[server]
listen = ["127.0.0.1:$coffer_port"]
max_connections_per_address = $((clients * 2))
[storage]
state_dir = "$work/coffer-state"
disk_reserve = "1 MiB"
[rate_limits]
# One address stands for every client here: the per-address and per-account limits would
# measure themselves.
public_per_minute = 100000000
public_burst = 100000000
api_per_minute = 100000000
api_burst = 100000000
[log]
level = "warn"
TOML
"$coffer" serve --config "$work/coffer.toml" 2>"$work/coffer.log" &
coffer_pid=$!
until curl -ksf -o /dev/null "$base/api/v1/health"; do :; done
password=$(cat "$work/coffer-state/initial-admin-password")
login_body="{\"username\":\"admin\",\"password\":\"$password\"}"
token=$(curl -ks "$base/api/v1/auth/login" -H 'content-type: application/json' -d "$login_body" |
  sed -E 's/.*"access_token":"([^"]+)".*/\1/')
auth="authorization: Bearer $token"

# The data the clients read: 50 files of 64 KiB at the top level and one share link.
mkdir -p "$work/www/files" "$work/www/s" "$work/www/upload" "$work/nginx-tmp"
for index in $(seq 50); do
  head -c 65536 /dev/urandom > "$work/www/files/$index"
  curl -ks -H "$auth" -T "$work/www/files/$index" "$base/api/v1/files/upload?name=file$index" |
    sed -E 's/.*"id":"([^"]+)".*/\1\n/' >> "$work/ids"
done
share_token=$(curl -ks -H "$auth" -H 'content-type: application/json' "$base/api/v1/shares" \
  -d "{\"file_id\":\"$(head -1 "$work/ids")\"}" | sed -E 's/.*"token":"([^"]+)".*/\1/')
curl -ks -H "$auth" "$base/api/v1/files" > "$work/www/files.json"
curl -ks "$base/s/$share_token" > "$work/www/s/page.html"
cp "$work/www/files/1" "$work/www/s/download"
head -c 4096 /dev/urandom > "$work/small"

cat > "$work/ops.lua" <<'LUA'
-- One wrk per operation; OP names it. Each thread counts its 5xx answers in a global that
-- done() (in wrk's main state) reads back with thread:get.
local op = os.getenv("OP")
local ids, counter = {}, 0
for line in io.lines(os.getenv("IDS")) do ids[#ids + 1] = line end
local small = io.open(os.getenv("SMALL"), "rb"):read("*a")
local threads = {}
local headers = {}
if os.getenv("AUTH") then headers["authorization"] = os.getenv("AUTH") end
errors = 0
id = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function request()
  counter = counter + 1
  if op == "download" then
    return wrk.format("GET", os.getenv("DOWNLOAD_PREFIX") .. ids[math.random(#ids)] .. os.getenv("DOWNLOAD_SUFFIX"), headers)
  elseif op == "upload" then
    return wrk.format("PUT", os.getenv("UPLOAD_PREFIX") .. string.format("load-%d-%d-%d", id, counter, math.random(1e9)), headers, small)
  elseif op == "signin" then
    return wrk.format("POST", "/api/v1/auth/login", { ["content-type"] = "application/json" }, os.getenv("LOGIN_BODY"))
  end
  return wrk.format("GET", os.getenv("TARGET"), headers)
end

refused = 0

function response(status, headers, body)
  if status >= 500 then errors = errors + 1 end
  if status >= 400 and status < 500 then refused = refused + 1 end
end

function done(summary, latency, requests)
  local total, refusals = 0, 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("errors")
    refusals = refusals + thread:get("refused")
  end
  io.write(string.format("5xx %d\n4xx %d\n", total, refusals))
end
LUA

# run_op NAME CONNECTIONS URL [VAR=VALUE...]: one wrk in the background, its report in a file.
run_op() {
  local name=$1 connections=$2 url=$3
  shift 3
  ((connections > 0)) || return 0
  env OP="$name" IDS="$work/ids" SMALL="$work/small" "$@" \
    wrk -t1 -c"$connections" -d"${seconds}s" --timeout 30s --latency -s "$work/ops.lua" "$url" \
    > "$work/$name.out" 2>&1 &
  load_pids+=($!)
}

report() {
  local server=$1
  printf '\n%s, %s clients, %s s\n' "$server" "$clients" "$seconds"
  printf '%-10s %6s %12s %10s %10s %8s %8s\n' operation conns requests/s p50 p99 5xx 4xx
  for name in list download upload share fetch signin; do
    [[ -f $work/$name.out ]] || continue
    awk -v name="$name" -v conns="$(awk '/connections/ {print $4; exit}' "$work/$name.out")" '
      /Requests\/sec/ {rps = $2} /^ +50%/ {p50 = $2} /^ +99%/ {p99 = $2} /^5xx/ {errors = $2} /^4xx/ {refused = $2}
      END {printf "%-10s %6s %12s %10s %10s %8s %8s\n", name, conns, rps, p50, p99, errors, refused}' "$work/$name.out"
  done
}

# Coffer: every operation at once; RSS and WAL sampled every 10 s meanwhile.
load_pids=()
run_op list "$list" "$base" TARGET=/api/v1/files AUTH="Bearer $token"
run_op download "$download" "$base" DOWNLOAD_PREFIX=/api/v1/files/ DOWNLOAD_SUFFIX=/content AUTH="Bearer $token"
run_op upload "$upload" "$base" UPLOAD_PREFIX="/api/v1/files/upload?folder=uploads&name=" AUTH="Bearer $token"
run_op share "$share" "$base" TARGET="/s/$share_token"
run_op fetch "$fetch" "$base" TARGET="/s/$share_token/download"
run_op signin "$signin" "$base" LOGIN_BODY="$login_body"
samples=()
for ((elapsed = 0; elapsed < seconds; elapsed += 10)); do
  sleep 10 # sampling interval of a benchmark, not synchronisation
  rss=$(awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$coffer_pid/status")
  wal=$(stat -c %s "$work/coffer-state/coffer.db-wal" 2>/dev/null || echo 0)
  samples+=("$((elapsed + 10))s:${rss}MiB/wal$((wal >> 20))MiB")
done
wait "${load_pids[@]}"
report "coffer (HTTPS, access token, 64 KiB files, 4 KiB uploads fsynced)"
printf 'coffer RSS and WAL every 10 s: %s\n' "${samples[*]}"
printf 'coffer peak RSS %s MiB; database busy errors in the log: %s\n' \
  "$(awk '/^VmHWM/ {print int($2 / 1024)}' "/proc/$coffer_pid/status")" \
  "$(grep -ci 'database is locked\|busy' "$work/coffer.log" || true)"
kill "$coffer_pid"
mkdir -p "$work/coffer-out" && mv "$work"/*.out "$work/coffer-out/"

# nginx: the same mix against static stand-ins (no sign-in: nginx has no accounts).
chmod -R a+rX "$work/www"
chmod 777 "$work/www/upload" "$work/nginx-tmp"
chmod 755 "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=localhost \
  -keyout "$work/nginx.key" -out "$work/nginx.crt" 2>/dev/null
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
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
nginx_base=https://127.0.0.1:$nginx_port
until curl -ksf -o /dev/null "$nginx_base/files.json"; do :; done
seq 50 > "$work/ids"
load_pids=()
run_op list "$list" "$nginx_base" TARGET=/files.json
run_op download "$download" "$nginx_base" DOWNLOAD_PREFIX=/files/ DOWNLOAD_SUFFIX=
run_op upload "$upload" "$nginx_base" UPLOAD_PREFIX=/upload/
run_op share "$share" "$nginx_base" TARGET=/s/page.html
run_op fetch "$fetch" "$nginx_base" TARGET=/s/download
wait "${load_pids[@]}"
report "nginx (HTTPS, static files, one worker)"
