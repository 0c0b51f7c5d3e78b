//! Runs the real `coffer` binary on 127.0.0.1:0 with a temp state dir and JSON logs, and gives
//! tests a client that trusts the certificate that server made for itself.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_coffer");
/// Bound on waiting for the server to do something it should do promptly.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The server's stderr, one JSON object per line, with a way to wait for a line.
#[derive(Clone, Default)]
pub struct Logs {
    inner: Arc<(Mutex<LogState>, Condvar)>,
}

#[derive(Default)]
struct LogState {
    lines: Vec<String>,
    ended: bool,
}

impl Logs {
    fn collect(&self, stream: impl std::io::Read + Send + 'static) {
        let logs = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let (lock, changed) = &*logs.inner;
                lock.lock().unwrap().lines.push(line);
                changed.notify_all();
            }
            let (lock, changed) = &*logs.inner;
            lock.lock().unwrap().ended = true;
            changed.notify_all();
        });
    }

    /// All lines so far.
    pub fn text(&self) -> String {
        self.inner.0.lock().unwrap().lines.join("\n")
    }

    /// Waits until a JSON line satisfies `matches`; `None` if the stream ended or time ran out.
    pub fn wait_for(&self, matches: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + PATIENCE;
        let (lock, changed) = &*self.inner;
        let mut state = lock.lock().unwrap();
        let mut seen = 0;
        loop {
            for line in &state.lines[seen..] {
                if let Ok(value) = serde_json::from_str::<Value>(line)
                    && matches(&value)
                {
                    return Some(value);
                }
            }
            seen = state.lines.len();
            let now = Instant::now();
            if state.ended || now >= deadline {
                return None;
            }
            state = changed.wait_timeout(state, deadline - now).unwrap().0;
        }
    }

    pub fn wait_for_message(&self, message: &str) -> Option<Value> {
        self.wait_for(|line| line["message"] == message)
    }
}

/// What a test wants to change about the server it starts.
#[derive(Default, Clone)]
pub struct Options {
    /// TOML merged over the test defaults.
    pub toml: String,
    pub env: Vec<(String, String)>,
    /// Reuse a state dir (restarts); a fresh temp dir otherwise.
    pub state_dir: Option<PathBuf>,
    /// Run the server bound by file permissions even when the tests run as root, as the
    /// packaged service (user `coffer`) is.
    pub obey_permissions: bool,
    /// Run the server in a private mount namespace with its state dir on a tmpfs this many
    /// MiB large (a small disk that can fill up).
    pub tmpfs_mib: Option<u32>,
    /// A listening socket the test owns (as `coffer.socket` would), passed to the server
    /// through `systemd-socket-activate --fdname=https`.
    pub passed_socket: Option<Arc<std::net::TcpListener>>,
    /// A command that runs the server binary (given as its next argument), such as a
    /// sandbox.
    pub wrapper: Vec<String>,
}

pub struct TestApp {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub base_url: String,
    pub state_dir: PathBuf,
    /// The settings file the server runs with.
    pub config: PathBuf,
    pub logs: Logs,
    pub client: reqwest::Client,
    /// Seconds added to the server's clock (debug builds read it at every time decision).
    pub clock_file: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

/// Deep-merges TOML `overlay` over `base`.
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(over)) => merge(inner, over),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Writes the config file a test server runs with.
pub fn write_config(dir: &Path, state_dir: &Path, extra: &str) -> PathBuf {
    let mut config: toml::Table = toml::from_str(&format!(
        // Rate limits are far above what any test does unless the test is about them.
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[storage]\nstate_dir = {:?}\ndisk_reserve = \"1 MiB\"\n[log]\nformat = \"json\"\n[auth]\nargon2_memory_kib = 64\nargon2_iterations = 1\n[rate_limits]\npublic_per_minute = 1000000\npublic_burst = 1000000\napi_per_minute = 1000000\napi_burst = 1000000\n",
        state_dir.display().to_string()
    ))
    .unwrap();
    merge(&mut config, toml::from_str(extra).expect("test TOML parses"));
    let path = dir.join("coffer.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    path
}

/// Whether `condition` becomes true within `PATIENCE`, checking every few milliseconds; for
/// effects that have no event to wait on (a file another thread removes).
/// Async, so the test's own clients keep running while it waits.
pub async fn eventually(condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A client trusting the PEM certificate at `cert`, or plain HTTP when `cert` is `None`.
pub fn client_trusting(cert: Option<&Path>) -> reqwest::Client {
    // Redirects are the server's answers too: tests see them rather than follow them.
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PATIENCE);
    if let Some(cert) = cert {
        let pem = std::fs::read(cert).expect("the server stored its certificate");
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

impl TestApp {
    /// Moves the server's clock forward by `seconds`, as if that much time had passed.
    pub fn advance_clock(&self, seconds: i64) {
        let now: i64 = std::fs::read_to_string(&self.clock_file).unwrap().trim().parse().unwrap();
        std::fs::write(&self.clock_file, (now + seconds).to_string()).unwrap();
    }

    pub fn self_signed_cert(&self) -> PathBuf {
        self.state_dir.join("tls/self-signed.crt")
    }

    /// A client whose connections come from `source`, another loopback address such as
    /// 127.0.0.7, so a test can play several clients on different addresses.
    pub fn client_from(&self, source: &str) -> reqwest::Client {
        let pem = std::fs::read(self.self_signed_cert()).unwrap();
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .local_address(source.parse::<std::net::IpAddr>().unwrap())
            .timeout(PATIENCE)
            .build()
            .unwrap()
    }

    /// A client that speaks only HTTP/1.1 to this server.
    pub fn http1_client(&self) -> reqwest::Client {
        let pem = std::fs::read(self.self_signed_cert()).unwrap();
        let builder = reqwest::Client::builder().use_rustls_tls().tls_built_in_root_certs(false);
        builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap()).http1_only().build().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request reaches the server")
    }

    pub fn pid(&self) -> rustix::process::Pid {
        pid(self.child.as_ref().expect("the server is running"))
    }

    /// SIGKILL: the process gets no chance to clean up, as in a power cut.
    pub fn kill_hard(&self) {
        rustix::process::kill_process(self.pid(), rustix::process::Signal::KILL).unwrap();
    }

    pub fn terminate(&self) {
        rustix::process::kill_process(self.pid(), rustix::process::Signal::TERM).unwrap();
    }

    /// Waits (bounded) for the process to exit, while this test's runtime keeps serving its
    /// clients' connections (a client must be able to answer the server's goodbye).
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server was running");
        let pid = pid(&child);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || sender.send(child.wait()));
        match tokio::time::timeout(PATIENCE, receiver).await {
            Ok(Ok(status)) => status.unwrap(),
            _ => {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                panic!("server did not exit in time; log:\n{}", self.logs.text())
            }
        }
    }
}

pub fn pid(child: &Child) -> rustix::process::Pid {
    rustix::process::Pid::from_raw(child.id() as i32).unwrap()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts the server as a child process; the command exits or the test fails with its log.
pub fn start(options: Options) -> Result<TestApp, (ExitStatus, String)> {
    let temp = tempfile::tempdir().unwrap();
    let state_dir = options.state_dir.clone().unwrap_or_else(|| temp.path().join("state"));
    let config = write_config(temp.path(), &state_dir, &options.toml);
    let clock_file = temp.path().join("clock-offset");
    std::fs::write(&clock_file, "0").unwrap();
    let mut command = if let Some(mib) = options.tmpfs_mib {
        std::fs::create_dir_all(&state_dir).unwrap();
        let mut command = Command::new("unshare");
        // -r maps the caller to root in a user namespace, so this works without root too.
        command.args(if is_root() { vec!["-m"] } else { vec!["-r", "-m"] });
        command.args(["--propagation", "private", "sh", "-c"]);
        command.arg(format!("mount -t tmpfs -o size={mib}m coffer-test \"$1\" && exec \"$2\" serve --config \"$3\""));
        command.arg("sh").arg(&state_dir).arg(BIN).arg(&config);
        command
    } else if let Some(socket) = &options.passed_socket {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let mut command = Command::new("sh");
        command.args(["-c", "LISTEN_PID=$$ exec systemd-socket-activate --fdname=https \"$@\"", "sh", BIN]);
        command.env("LISTEN_FDS", "1");
        let fd = socket.as_raw_fd();
        // SAFETY: only async-signal-safe calls between fork and exec: dup2 clears FD_CLOEXEC
        // on the copy, which becomes the first passed descriptor (3).
        unsafe {
            command
                .pre_exec(move || if libc::dup2(fd, 3) == 3 { Ok(()) } else { Err(std::io::Error::last_os_error()) });
        }
        command
    } else if let Some((program, args)) = options.wrapper.split_first() {
        let mut command = Command::new(program);
        command.args(args).arg(BIN);
        command
    } else if options.obey_permissions && is_root() {
        let mut command = Command::new("setpriv");
        command.args(["--bounding-set=-dac_override,-dac_read_search", "--"]).arg(BIN);
        command
    } else {
        Command::new(BIN)
    };
    if options.tmpfs_mib.is_none() {
        command.arg("serve").arg("--config").arg(&config);
    }
    command.env("TESTING_COFFER_CLOCK_FILE", &clock_file);
    command.envs(options.env.iter().cloned()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("coffer starts");
    let logs = Logs::default();
    logs.collect(child.stderr.take().unwrap());
    if let Some(socket) = &options.passed_socket {
        // systemd-socket-activate starts the server at the first connection: make one.
        drop(std::net::TcpStream::connect(socket.local_addr().unwrap()));
    }
    let Some(listening) = logs.wait_for_message("listening") else {
        let _ = child.kill();
        let status = child.wait().unwrap();
        return Err((status, logs.text()));
    };
    let base_url = listening["url"].as_str().unwrap().to_owned();
    let addr: SocketAddr = base_url.rsplit("://").next().unwrap().parse().unwrap();
    // A tmpfs state dir is only visible inside the server's mount namespace: reach it there.
    let state_dir = match options.tmpfs_mib {
        Some(_) => PathBuf::from(format!("/proc/{}/root", child.id())).join(state_dir.strip_prefix("/").unwrap()),
        None => state_dir,
    };
    let cert = state_dir.join("tls/self-signed.crt");
    let trusted = (base_url.starts_with("https") && cert.exists()).then_some(cert.as_path());
    let client = client_trusting(trusted);
    Ok(TestApp { child: Some(child), addr, base_url, state_dir, config, logs, client, clock_file, _temp: Some(temp) })
}

/// Starts the server or fails the test with its log.
pub fn spawn_app(options: Options) -> TestApp {
    match start(options) {
        Ok(app) => app,
        Err((status, log)) => panic!("server did not start ({status}):\n{log}"),
    }
}

pub fn spawn_default() -> TestApp {
    spawn_app(Options::default())
}

/// Runs `coffer <args>` to completion, returning (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .env_remove("CREDENTIALS_DIRECTORY")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("coffer runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
