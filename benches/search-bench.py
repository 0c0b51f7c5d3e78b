"""Search benchmark (not a test): Coffer end to end over HTTPS against SQLite FTS5, on the same
synthetic corpus, in the same run. Run by benches/search.sh, which builds Coffer and installs
what this needs.

Usage: search-bench.py COFFER_BINARY WORKDIR   (N_DOCS, default 100000; REPS, default 3)

Corpus (the generator of the search design study, same seed): 50,000 pseudo-words with Zipf
frequencies; each file has a name of 2-4 words and an extension, a 1-3 KB text body and one of
200 owners; user u7 owns about 500 files and was granted 1,000 more. Queries (200 each):
single words, two-word ANDs and 3-letter name prefixes, all as u7, 20 results with
highlights. Coffer: GET /api/v1/search over HTTPS (keep-alive, one client), which checks every
hit against SQLite. FTS5 (unicode61, remove_diacritics, prefix index): the same permission
filter (`+rowid IN` u7's owned and granted files) and snippet(), in process, so without
any HTTP, TLS or JSON cost. Also: Coffer's full rebuild (cold and warm text cache), the time
from an upload's 201 until it is searchable, and the server's memory.
"""
import atexit, http.client, json, os, random, shutil, sqlite3, ssl, subprocess, sys, time, urllib.parse, hashlib, re
import numpy as np

N_DOCS = int(os.environ.get("N_DOCS", 100_000))
REPS = int(os.environ.get("REPS", 3))
V, N_Q, SEED = 50_000, 200, 7
COFFER, WORK = sys.argv[1], sys.argv[2]
PORT = 18743

rng = np.random.default_rng(SEED)
random.seed(SEED)
cons = list("bcdfghjklmnprstvwz") + ["ch", "sh", "th", "tr", "st", "gr"]
vows = list("aeiou") + ["ai", "ou", "ee", "é", "ö"]
vocab, seen = [], set()
while len(vocab) < V:
    n = random.choice([1, 2, 2, 3, 3, 4])
    w = "".join(random.choice(cons) + random.choice(vows) for _ in range(n))
    if random.random() < 0.3:
        w += random.choice(cons)
    if w not in seen:
        seen.add(w)
        vocab.append(w)
p = 1.0 / np.arange(1, V + 1, dtype=np.float64)
p /= p.sum()
lens = rng.integers(100, 351, size=N_DOCS)
words = rng.choice(V, size=int(lens.sum()), p=p)
vocab_arr = np.array(vocab, dtype=object)
exts = ["pdf", "docx", "txt", "md", "jpg", "png", "xlsx", "csv", "rs", "py", "odt", "html"]
seps = ["_", "-", " "]
names, bodies, owners = [], [], []
pos = 0
name_words = rng.choice(V, size=N_DOCS * 4, p=p ** 0.7 / (p ** 0.7).sum())
for i in range(N_DOCS):
    k = int(lens[i])
    bodies.append(" ".join(vocab_arr[words[pos:pos + k]]))
    pos += k
    nw = 2 + (i % 3)
    names.append(random.choice(seps).join(vocab_arr[name_words[i * 4:i * 4 + nw]]) + "." + random.choice(exts))
    owners.append(f"u{random.randrange(200)}")

def rank_sample(n, lo=1, hi=20_000):
    return [int(x) for x in np.exp(rng.uniform(np.log(lo), np.log(hi), size=n)).astype(int)]

single = [vocab[r - 1] for r in rank_sample(N_Q)]
double = [(vocab[a - 1], vocab[b - 1]) for a, b in zip(rank_sample(N_Q), rank_sample(N_Q))]
prefixes = []
while len(prefixes) < N_Q:
    w = vocab[rank_sample(1, 1, 5_000)[0] - 1]
    if len(w) >= 4 and w[:3].isascii():
        prefixes.append(w[:3])
acl_user = "u7"
granted = sorted(random.sample([i for i in range(N_DOCS) if owners[i] != acl_user], min(1000, N_DOCS // 10)))

def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]

def run(fn, qs):
    for q in qs[:20]:
        fn(q)
    p50s, p99s, hits = [], [], []
    for _ in range(REPS):
        lat = []
        for q in qs:
            t = time.perf_counter()
            hits.append(fn(q))
            lat.append((time.perf_counter() - t) * 1000)
        p50s.append(pct(lat, 50))
        p99s.append(pct(lat, 99))
    med = lambda xs: sorted(xs)[len(xs) // 2]
    return {"p50_ms": round(med(p50s), 2), "p99_ms": round(med(p99s), 2), "p99_runs": [round(x, 1) for x in p99s],
            "mean_hits": round(sum(hits) / len(hits), 1)}

shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
results = {"docs": N_DOCS, "acl_user_files": owners.count(acl_user) + len(granted)}

ENGINES = os.environ.get("ENGINES", "fts5,coffer").split(",")

# ---------------- SQLite FTS5 ----------------
def bench_fts5():
    dbp = os.path.join(WORK, "fts5.db")

    con = sqlite3.connect(dbp)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE meta (id INTEGER PRIMARY KEY, owner TEXT NOT NULL)")
    con.execute("CREATE INDEX meta_owner ON meta(owner)")
    con.execute("CREATE TABLE grants (file_id INTEGER, user_id TEXT, PRIMARY KEY (user_id, file_id))")
    con.execute("CREATE VIRTUAL TABLE docs USING fts5(name, body, tokenize='unicode61 remove_diacritics 2', prefix='3')")
    t = time.perf_counter()
    with con:
        con.executemany("INSERT INTO meta VALUES (?, ?)", ((i, owners[i]) for i in range(N_DOCS)))
        con.executemany("INSERT INTO grants VALUES (?, ?)", ((g, acl_user) for g in granted))
        con.executemany("INSERT INTO docs(rowid, name, body) VALUES (?, ?, ?)", ((i, names[i], bodies[i]) for i in range(N_DOCS)))
        con.execute("INSERT INTO docs(docs) VALUES('optimize')")
    results["fts5_build_s"] = round(time.perf_counter() - t, 1)
    FTS = ("SELECT rowid, name, snippet(docs, 1, '[', ']', '…', 24) FROM docs WHERE docs MATCH ?1 AND +rowid IN "
           "(SELECT id FROM meta WHERE owner = ?2 UNION ALL SELECT file_id FROM grants WHERE user_id = ?2) "
           "ORDER BY bm25(docs) LIMIT 20")
    fts = lambda match: len(con.execute(FTS, (match, acl_user)).fetchall())
    fts5 = {
        "single": run(lambda w: fts(f'{{name body}} : "{w}"'), single),
        "two_words": run(lambda ab: fts(f'{{name body}} : ("{ab[0]}" AND "{ab[1]}")'), double),
        "name_prefix3": run(lambda x: fts(f"name : {x}*"), prefixes),
    }
    print(json.dumps({"fts5": fts5}), flush=True)
    return fts5


if "fts5" in ENGINES:
    results["fts5"] = bench_fts5()

# ---------------- Coffer ----------------
state = os.path.join(WORK, "coffer-state")
config = os.path.join(WORK, "coffer.toml")
with open(config, "w") as f:
    f.write(f'[server]\nlisten = ["127.0.0.1:{PORT}"]\n[storage]\nstate_dir = "{state}"\ndisk_reserve = "1 MiB"\n'
            f'[log]\nformat = "json"\nlevel = "{os.environ.get("BENCH_LOG", "info")}"\n[auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\n'
            # One account searching at full speed: no rate limit may answer it.
            f'[rate_limits]\napi_per_minute = 100000000\napi_burst = 100000000\n')
ctx = ssl._create_unverified_context()

servers = []
atexit.register(lambda: [server.kill() for server in servers if server.poll() is None])

def start():
    log = open(os.path.join(WORK, "coffer.log"), "a")
    proc = subprocess.Popen([COFFER, "serve", "--config", config], stderr=log, stdout=subprocess.DEVNULL)
    servers.append(proc)
    conn = None
    for _ in range(500):
        try:
            conn = Client()
            conn.conn.request("GET", "/api/v1/health")
            conn.conn.getresponse().read()
            return proc, conn
        except OSError:
            time.sleep(0.02)
    raise SystemExit("coffer did not start")

class Client:
    """One keep-alive HTTPS connection, made again when the server closed an idle one."""

    def __init__(self):
        self.conn = http.client.HTTPSConnection("127.0.0.1", PORT, context=ctx)

    def request(self, *args, **kwargs):
        try:
            self.conn.request(*args, **kwargs)
            return self.conn.getresponse()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPSConnection("127.0.0.1", PORT, context=ctx)
            self.conn.request(*args, **kwargs)
            return self.conn.getresponse()

def call(conn, method, path, token=None, body=None, headers=None):
    h = dict(headers or {})
    if token:
        h["authorization"] = f"Bearer {token}"
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        h["content-type"] = "application/json"
    r = conn.request(method, path, body=body, headers=h)
    return r.status, r.read()

def login(conn, user, password):
    status, body = call(conn, "POST", "/api/v1/auth/login", body={"username": user, "password": password})
    return json.loads(body)["access_token"]

proc, conn = start()
admin = login(conn, "admin", open(os.path.join(state, "initial-admin-password")).read().strip())
password = "bench-passphrase-0123"
status, body = call(conn, "POST", "/api/v1/users", admin, {"username": acl_user, "password": password})
u7_id = json.loads(body)["id"]
proc.terminate()
proc.wait()

# Seed the stopped server's database and blob store directly (the bench measures search,
# not 100,000 uploads); the triggers record every row as they would for uploads.
db = sqlite3.connect(os.path.join(state, "coffer.db"))
user_ids = {f"u{n}": (u7_id if n == 7 else f"bench-u{n}") for n in range(200)}
now = int(time.time())
with db:
    db.executemany("INSERT INTO users (id, username, username_key, password_hash, role, created_at) VALUES (?, ?, ?, 'x', 'user', ?)",
                   ((uid, f"bench{n}", f"bench{n}", now) for n, (name, uid) in enumerate(user_ids.items()) if name != acl_user))
    file_ids = [hashlib.md5(f"file{i}".encode()).hexdigest() for i in range(N_DOCS)]
    rows = []
    for i in range(N_DOCS):
        data = bodies[i].encode()
        sha = hashlib.sha256(data).hexdigest()
        blob = os.path.join(state, "blobs", sha[:2], sha[2:4])
        os.makedirs(blob, exist_ok=True)
        with open(os.path.join(blob, sha), "wb") as f:
            f.write(data)
        rows.append((file_ids[i], user_ids[owners[i]], "", names[i], len(data), sha, "text/plain", "", now, now))
    db.executemany("INSERT INTO files (id, owner_id, folder, name, size, sha256, content_type, description, created_at, modified_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.executemany("INSERT INTO file_grants VALUES (?, ?, ?)", ((file_ids[g], u7_id, now) for g in granted))
db.close()
shutil.rmtree(os.path.join(state, "search"), ignore_errors=True)

def wait_log(pattern, after):
    while True:
        with open(os.path.join(WORK, "coffer.log")) as f:
            lines = f.readlines()[after:]
        for line in lines:
            if pattern in line:
                return json.loads(line)
        time.sleep(0.05)

def log_length():
    with open(os.path.join(WORK, "coffer.log")) as f:
        return len(f.readlines())

def status_kib(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field):
            return int(line.split()[1])

mark = log_length()
proc, conn = start()
cold = wait_log("search index rebuilt", mark)
results["coffer_rebuild_cold_cache_s"] = round(cold["seconds"], 1)
results["coffer_peak_rss_mib_after_cold_rebuild"] = round(status_kib(proc.pid, "VmHWM") / 1024)
admin = login(conn, "admin", open(os.path.join(state, "initial-admin-password")).read().strip())
with open(f"/proc/{proc.pid}/clear_refs", "w") as f:
    f.write("5")
mark = log_length()
call(conn, "POST", "/api/v1/admin/search/rebuild", admin)
warm = wait_log("search index rebuilt", mark)
results["coffer_rebuild_warm_cache_s"] = round(warm["seconds"], 1)
results["coffer_peak_rss_mib_during_warm_rebuild"] = round(status_kib(proc.pid, "VmHWM") / 1024)
results["coffer_index_mib"] = round(sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(state, "search/index")) for f in fs) / 2**20)
# The HTML files' texts come from the isolated extractor, one child at a time, after the
# index is built: wait for that backlog, so the queries measure search, not extraction.
t = time.perf_counter()
while True:
    status = json.loads(call(conn, "GET", "/api/v1/admin/search", admin)[1])
    if status["extraction"]["queued"] == 0 and status["pending"] == 0:
        break
    time.sleep(0.5)
results["coffer_extraction_backlog_after_rebuild_s"] = round(time.perf_counter() - t, 1)
results["coffer_extraction_counts"] = status["extraction"]
token = login(conn, acl_user, password)

def coffer(q):
    status, body = call(conn, "GET", "/api/v1/search?" + urllib.parse.urlencode({"q": q, "limit": 20}), token)
    assert status == 200, body
    return len(json.loads(body)["results"])

with open(f"/proc/{proc.pid}/clear_refs", "w") as f:
    f.write("5")
coffer_q = {
    "single": run(coffer, single),
    "two_words": run(lambda ab: coffer(f"{ab[0]} {ab[1]}"), double),
    "name_prefix3": run(coffer, prefixes),
}
results["coffer"] = coffer_q
results["coffer_peak_rss_mib_during_queries"] = round(status_kib(proc.pid, "VmHWM") / 1024)
print(json.dumps({"coffer": coffer_q}), flush=True)

# Change to searchable: an upload's 201 until a search by its unique word finds it.
fresh = []
for n in range(50):
    word = "zq" + hashlib.sha256(f"fresh{n}".encode()).hexdigest()[:10]
    status, body = call(conn, "PUT", "/api/v1/files/upload?name=" + urllib.parse.quote(f"{word}.txt"), token, f"{word} body".encode())
    assert status == 201, body
    t = time.perf_counter()
    while coffer(word) == 0:
        time.sleep(0.005)
    fresh.append((time.perf_counter() - t) * 1000)
    time.sleep(0.05)
results["change_to_searchable_ms"] = {"p50": round(pct(fresh, 50)), "p99": round(pct(fresh, 99)), "max": round(max(fresh))}
results["coffer_idle_rss_mib"] = round(status_kib(proc.pid, "VmRSS") / 1024)
proc.terminate()
proc.wait()
print(json.dumps(results, indent=1))
with open(os.path.join(os.path.dirname(WORK.rstrip("/")), f"search-bench-{N_DOCS}.json"), "w") as f:
    json.dump(results, f, indent=1)
