#!/usr/bin/env bash
# Benchmark (not a test): `coffer backup` against `rsync -aH --link-dest` on the same store in
# the same run. The store: 20,000 blobs of 4 KiB-1 MiB (size = 4 KiB * 256^(u^2), about
# 2 GiB) with their file rows, written straight into a state directory (the server then runs
# on it, idle, as it would during a nightly backup). Measured, each with wall time, new disk
# space (df) and, for Coffer, peak RSS:
#   first backup          coffer backup create  | rsync -aH state/ snap1/ (a full copy) and
#                                                 rsync -aH --link-dest=<state> (links to the store)
#   unchanged, 3 times    coffer backup create  | rsync -aH --link-dest=snapN
#   after 1% new blobs    coffer backup create  | rsync -aH --link-dest=snapN
#   read back everything  coffer backup verify --read-data | sha256sum of the same files, 2 processes
#   restore               coffer backup restore (copies, hashes, one syncfs) | rsync -aH snapN/ (copies)
# Goals (issue 12): unchanged <= 2 s and <= database + 5 MiB of new space; 1% new faster than
# rsync's; verify --read-data within 1.2x of sha256sum; bounded memory.
#
# Usage: benches/backup.sh [blobs]   (default 20000). As root on Debian it installs rsync and
# time when missing. Needs about 4.5 times the store's size free under /var/tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
blobs=${1:-20000}

for pair in rsync:rsync /usr/bin/time:time python3:python3-minimal; do
  if ! command -v "${pair%%:*}" >/dev/null; then
    [[ $(id -u) -eq 0 ]] || { echo "needs ${pair#*:} (run as root to install it)" >&2; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pair#*:}" >/dev/null
  fi
done
cargo build --release --locked -q
coffer=$PWD/target/release/coffer
work=$(mktemp -d /var/tmp/coffer-backup-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
state=$work/state
port=18743

cat > "$work/coffer.toml" <<TOML
[server]
listen = ["127.0.0.1:$port"]
[storage]
state_dir = "$state"
disk_reserve = "1 MiB"
[backup]
directory = "$work/backups"
[log]
level = "warn"
TOML
run_server() {
  "$coffer" serve --config "$work/coffer.toml" 2>>"$work/coffer.log" &
  server=$!
  until curl -ksf -o /dev/null "https://127.0.0.1:$port/api/v1/health" 2>/dev/null; do sleep 0.05; done
}
stop_server() { kill "$server"; wait "$server" 2>/dev/null || true; }
command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }

# Blobs and rows, as uploads would leave them (the server is stopped meanwhile, so its
# collector cannot see a blob before its row). Deterministic: seeded sizes, random contents.
add_blobs() { # count seed
  python3 - "$state" "$1" "$2" <<'PY'
import hashlib, os, random, sqlite3, sys, time, uuid
state, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
db = sqlite3.connect(os.path.join(state, "coffer.db"))
owner = db.execute("SELECT id FROM users WHERE username = 'admin'").fetchone()[0]
now, rows = int(time.time()), []
for index in range(count):
    data = os.urandom(int(4096 * 256 ** (rng.random() ** 2)))
    digest = hashlib.sha256(data).hexdigest()
    shard = os.path.join(state, "blobs", digest[:2], digest[2:4])
    os.makedirs(shard, mode=0o700, exist_ok=True)
    path = os.path.join(shard, digest)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400), "wb") as blob:
        blob.write(data)
    rows.append((uuid.uuid4().hex, owner, "", f"bench-{seed}-{index}.bin", len(data), digest,
                 "application/octet-stream", "", now, now))
db.executemany("INSERT INTO files (id, owner_id, folder, name, size, sha256, content_type, description,"
               " created_at, modified_at) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
db.commit()
PY
  sync
}

used() { sync; df -B1 --output=used "$work" | tail -1; }
mib() { awk -v bytes="$1" 'BEGIN { printf "%.1f MiB", bytes / 1048576 }'; }
# timed LABEL COMMAND...: runs it, records seconds, peak RSS (KiB) and new space (bytes).
declare -A seconds rss space
timed() {
  local label=$1; shift
  local before; before=$(used)
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
  read -r seconds[$label] rss[$label] <"$work/time"
  space[$label]=$(( $(used) - before ))
}

run_server
stop_server
add_blobs "$blobs" 1
store_bytes=$(du -sb "$state/blobs" | cut -f1)
run_server
"$coffer" backup init --config "$work/coffer.toml" >/dev/null

timed coffer_first "$coffer" backup create --config "$work/coffer.toml"
mkdir -p "$work/peer"
timed rsync_first_copy rsync -aH "$state/" "$work/peer/copy/"
timed rsync_first rsync -aH --link-dest="$state" "$state/" "$work/peer/snap1/"
db_bytes=$(stat -c %s "$state/coffer.db")
for round in 1 2 3; do
  timed "coffer_unchanged_$round" "$coffer" backup create --config "$work/coffer.toml"
  timed "rsync_unchanged_$round" rsync -aH --link-dest="../snap$round" "$state/" "$work/peer/snap$((round + 1))/"
done
stop_server
add_blobs $((blobs / 100)) 2
run_server
timed coffer_new "$coffer" backup create --config "$work/coffer.toml"
timed rsync_new rsync -aH --link-dest=../snap4 "$state/" "$work/peer/snap5/"
# Read back: warm (page cache holds the store here), the same bytes for both.
timed coffer_verify "$coffer" backup verify --read-data --config "$work/coffer.toml"
timed sha256sum_all bash -c 'find "$1" -type f -print0 | xargs -0 -n 500 -P 2 sha256sum >/dev/null' _ "$work/backups/pool"
timed coffer_restore "$coffer" backup restore --to "$work/restored" --config "$work/coffer.toml"
timed rsync_restore rsync -aH "$work/peer/snap5/" "$work/restored-peer/"
stop_server

median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }
unchanged_coffer=$(median "${seconds[coffer_unchanged_1]}" "${seconds[coffer_unchanged_2]}" "${seconds[coffer_unchanged_3]}")
unchanged_rsync=$(median "${seconds[rsync_unchanged_1]}" "${seconds[rsync_unchanged_2]}" "${seconds[rsync_unchanged_3]}")
unchanged_space=$(median "${space[coffer_unchanged_1]}" "${space[coffer_unchanged_2]}" "${space[coffer_unchanged_3]}")
unchanged_rsync_space=$(median "${space[rsync_unchanged_1]}" "${space[rsync_unchanged_2]}" "${space[rsync_unchanged_3]}")
peak=0
for label in "${!rss[@]}"; do [[ $label == coffer_* && ${rss[$label]} -gt $peak ]] && peak=${rss[$label]}; done
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo "not met"; fi; }

echo "store: $blobs blobs, $(mib "$store_bytes"), database $(mib "$db_bytes"); $(nproc) cores; $(rsync --version | head -1)"
echo
echo "| | coffer backup | rsync -aH | goal |"
echo "| --- | --- | --- | --- |"
echo "| first backup | ${seconds[coffer_first]} s, $(mib "${space[coffer_first]}") new | full copy ${seconds[rsync_first_copy]} s, $(mib "${space[rsync_first_copy]}"); --link-dest=store ${seconds[rsync_first]} s, $(mib "${space[rsync_first]}") | |"
echo "| unchanged (median of 3) | $unchanged_coffer s, $(mib "$unchanged_space") new | $unchanged_rsync s, $(mib "$unchanged_rsync_space") new | <= 2 s: $(verdict "$unchanged_coffer <= 2"); <= db + 5 MiB: $(verdict "$unchanged_space <= $db_bytes + 5242880") |"
echo "| 1% new ($((blobs / 100)) blobs) | ${seconds[coffer_new]} s, $(mib "${space[coffer_new]}") new | ${seconds[rsync_new]} s, $(mib "${space[rsync_new]}") new | faster than rsync: $(verdict "${seconds[coffer_new]} < ${seconds[rsync_new]}") |"
echo "| read back all (verify --read-data / sha256sum x2) | ${seconds[coffer_verify]} s | ${seconds[sha256sum_all]} s | <= 1.2x: $(verdict "${seconds[coffer_verify]} <= 1.2 * ${seconds[sha256sum_all]}") |"
echo "| restore (copies; Coffer hashes each blob, then syncs the file system once) | ${seconds[coffer_restore]} s | ${seconds[rsync_restore]} s | |"
echo "| Coffer peak RSS, any command | $((peak / 1024)) MiB | | bounded |"
echo
for label in coffer_first coffer_unchanged_1 coffer_new coffer_verify coffer_restore; do
  echo "peak RSS $label: $((rss[$label] / 1024)) MiB"
done
