//! A `stele serve` child process and a blocking HTTP client for it.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::blocking::{Body, Client};
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

use crate::bin::stele_bin;

/// How long a server may take to print its `listening on` line.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long any other `stele` command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a server did not come up.
#[derive(Debug)]
pub struct StartFailure {
    /// Its exit status, if it exited (None: it hung and was killed).
    pub status: Option<ExitStatus>,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

/// A running `stele serve`. Dropping it kills the process.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`, as printed by the server.
    pub url: String,
    /// The data directory it serves.
    pub data: PathBuf,
    stderr: Arc<Mutex<String>>,
    client: Client,
    tokens: Option<TestTokens>,
    /// The lines it printed on stdout before `listening on`.
    pub banner: Vec<String>,
}

/// The tokens a server started with [`Server::start_secured`] is driven with.
#[derive(Clone, Debug)]
pub struct TestTokens {
    /// The first admin token (`DATA/admin.token`), if this start created it or it is still there.
    pub admin: Option<String>,
    /// A writer without bindings: [`Server::post`] sends it.
    pub writer: String,
    /// An auditor: [`Server::get`] sends it.
    pub auditor: String,
}

/// `stele token create --data DATA --role ROLE EXTRA…`: the token printed on the last line.
///
/// # Panics
///
/// If the command fails.
pub fn create_token(data: &Path, role: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "token".as_ref(),
        "create".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
        "--role".as_ref(),
        std::ffi::OsStr::new(role),
    ];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let out = run_stele(args);
    assert!(
        out.status.success(),
        "stele token create --role {role} {extra:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8 token")
        .lines()
        .last()
        .expect("a token line")
        .trim()
        .to_owned()
}

/// A blocking client with a generous per-request timeout, never using a proxy.
pub fn http_client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .no_proxy()
        .build()
        .expect("HTTP client")
}

impl Server {
    /// Starts `stele serve --data DATA --listen 127.0.0.1:0 --no-auth EXTRA…` and waits until
    /// it prints its address and answers `GET /healthz` with 200.
    ///
    /// The log is open (`--no-auth`): these tests are about storage, formats and the API's
    /// answers, and count entries exactly, which the meta-log of an authenticated server
    /// would change. [`Server::start_secured`] starts one with access control.
    ///
    /// # Panics
    ///
    /// If it does not come up; the message holds its stderr.
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        match Server::try_start(data, extra) {
            Ok(s) => s,
            Err(f) => panic!(
                "stele serve --data {} did not start (status {:?}); stderr:\n{}",
                data.display(),
                f.status,
                f.stderr
            ),
        }
    }

    /// Like [`Server::start`], but returns how it failed instead of panicking.
    ///
    /// # Errors
    ///
    /// If the process exits, or does not print its address within [`START_TIMEOUT`].
    pub fn try_start(data: &Path, extra: &[&str]) -> Result<Server, StartFailure> {
        Server::try_start_on(data, "127.0.0.1:0", extra)
    }

    /// Like [`Server::try_start`], listening on `listen` (for a server that must come back on
    /// the same address).
    ///
    /// # Errors
    ///
    /// As [`Server::try_start`].
    pub fn try_start_on(data: &Path, listen: &str, extra: &[&str]) -> Result<Server, StartFailure> {
        let mut args = extra.to_vec();
        if !args.contains(&"--no-auth") {
            args.push("--no-auth");
        }
        Server::launch_on(data, listen, &args, http_client())
    }

    /// The value of a banner line `PREFIX VALUE` (like `syslog on tcp://127.0.0.1:5140`).
    pub fn banner_value(&self, prefix: &str) -> Option<&str> {
        self.banner
            .iter()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .map(str::trim)
    }

    /// Starts `stele serve --data DATA --listen 127.0.0.1:0 EXTRA…` with authentication on,
    /// then creates a writer and an auditor token (offline, on its data directory, as an
    /// operator would) for [`Server::post`] and [`Server::get`] to send.
    ///
    /// # Panics
    ///
    /// If it does not come up; the message holds its stderr.
    pub fn start_secured(data: &Path, extra: &[&str]) -> Server {
        Server::start_secured_with(data, extra, http_client())
    }

    /// Like [`Server::start_secured`], driven with `client` (e.g. one that trusts a test CA,
    /// for a server started with `--tls-cert`).
    ///
    /// # Panics
    ///
    /// If it does not come up; the message holds its stderr.
    pub fn start_secured_with(data: &Path, extra: &[&str], client: Client) -> Server {
        let mut server = Server::launch(data, extra, client).unwrap_or_else(|f| {
            panic!(
                "stele serve --data {} did not start (status {:?}); stderr:\n{}",
                data.display(),
                f.status,
                f.stderr
            )
        });
        let admin = std::fs::read_to_string(data.join("admin.token"))
            .ok()
            .map(|t| t.trim().to_owned());
        let tokens = TestTokens {
            admin,
            writer: create_token(data, "writer", &[]),
            auditor: create_token(data, "auditor", &[]),
        };
        // The first authenticated request makes the server load the new tokens and record
        // their creation in the log, so the log's size is settled when this returns.
        let (status, _) = server.get_as(Some(&tokens.auditor), "/v1/log");
        assert_eq!(status, 200, "the new auditor token is refused");
        server.tokens = Some(tokens);
        server
    }

    /// The tokens of a server started with [`Server::start_secured`].
    pub fn tokens(&self) -> Option<&TestTokens> {
        self.tokens.as_ref()
    }

    /// Starts `stele serve --data DATA --listen 127.0.0.1:0 EXTRA…` as given (no flag added)
    /// and waits for `GET /healthz` through `client`.
    ///
    /// # Errors
    ///
    /// If the process exits, or does not print its address within [`START_TIMEOUT`].
    pub fn launch(data: &Path, extra: &[&str], client: Client) -> Result<Server, StartFailure> {
        Server::launch_on(data, "127.0.0.1:0", extra, client)
    }

    /// Like [`Server::launch`], listening on `listen`.
    ///
    /// # Errors
    ///
    /// As [`Server::launch`].
    pub fn launch_on(
        data: &Path,
        listen: &str,
        extra: &[&str],
        client: Client,
    ) -> Result<Server, StartFailure> {
        let mut child = Command::new(stele_bin())
            .arg("serve")
            .arg("--data")
            .arg(data)
            .arg("--listen")
            .arg(listen)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning stele serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        drain_into(child.stderr.take().expect("piped stderr"), stderr.clone());
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            // Keep reading after the address line so the server never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let mut banner = Vec::new();
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(line) => {
                    if let Some(rest) = line.trim().strip_prefix("listening on ") {
                        break rest.trim().trim_end_matches('/').to_owned();
                    }
                    banner.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed: the process is exiting.
                    let status = wait_timeout(&mut child, Duration::from_secs(10));
                    return Err(failure(&mut child, status, &stderr));
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(failure(&mut child, Some(status), &stderr));
            }
            if Instant::now() >= deadline {
                return Err(failure(&mut child, None, &stderr));
            }
        };
        let server = Server {
            child: Some(child),
            url,
            data: data.to_path_buf(),
            stderr,
            client,
            tokens: None,
            banner,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(r) = server.client.get(server.at("/healthz")).send() {
                if r.status() == 200 {
                    return Ok(server);
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} printed its address but /healthz never answered 200",
                server.url
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("server running")
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// The HTTP client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Sends SIGKILL and reaps the process: a crash at an arbitrary instant.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGKILL);
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for a graceful exit.
    ///
    /// # Panics
    ///
    /// If it has not exited within [`STOP_TIMEOUT`] (it is then killed).
    pub fn terminate(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server running");
        signal(&child, libc::SIGTERM);
        match wait_timeout(&mut child, STOP_TIMEOUT) {
            Some(status) => status,
            None => {
                signal(&child, libc::SIGKILL);
                let _ = child.wait();
                panic!(
                    "stele serve did not exit within {STOP_TIMEOUT:?} of SIGTERM; stderr:\n{}",
                    self.stderr()
                );
            }
        }
    }

    /// `POST /v1/events` with `body` and the given Content-Type (none if `None`).
    /// Returns the status and the JSON answer (`Value::Null` if it is not JSON).
    ///
    /// # Errors
    ///
    /// Transport errors (the server is gone, or did not answer in time).
    pub fn try_post(
        &self,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> reqwest::Result<(u16, Value)> {
        let mut req = self.client.post(self.at("/v1/events")).body(body);
        if let Some(t) = &self.tokens {
            req = req.bearer_auth(&t.writer);
        }
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        let r = req.send()?;
        let status = r.status().as_u16();
        let bytes = r.bytes()?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// [`Server::try_post`] that panics on transport errors.
    pub fn post(&self, content_type: Option<&str>, body: impl Into<Body>) -> (u16, Value) {
        self.try_post(content_type, body)
            .unwrap_or_else(|e| panic!("POST /v1/events: {e}; server stderr:\n{}", self.stderr()))
    }

    /// Posts `value` (an event object or an array) as `application/json`.
    pub fn post_json(&self, value: &Value) -> (u16, Value) {
        self.post(Some("application/json"), value.to_string())
    }

    /// `GET path`: status and body bytes.
    ///
    /// # Panics
    ///
    /// On transport errors.
    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        self.get_as(self.tokens.as_ref().map(|t| t.auditor.as_str()), path)
    }

    /// `GET path` with `token` (none: no credentials): status and body bytes.
    ///
    /// # Panics
    ///
    /// On transport errors.
    pub fn get_as(&self, token: Option<&str>, path: &str) -> (u16, Vec<u8>) {
        let mut req = self.client.get(self.at(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}; server stderr:\n{}", self.stderr()));
        let status = r.status().as_u16();
        let body = r
            .bytes()
            .unwrap_or_else(|e| panic!("GET {path}: body: {e}"));
        (status, body.to_vec())
    }

    /// `GET path`, expecting 200 and JSON.
    ///
    /// # Panics
    ///
    /// On another status or a body that is not JSON.
    pub fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(
            status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
    }

    /// The log size reported by `GET /healthz`.
    pub fn size(&self) -> u64 {
        self.get_json("/healthz")["size"]
            .as_u64()
            .expect("/healthz has a numeric size")
    }

    /// Waits until `GET /checkpoint` names a tree of at least `size` entries and returns the
    /// note.
    ///
    /// # Panics
    ///
    /// If that takes longer than 30 s.
    pub fn checkpoint_at_least(&self, size: u64) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self.get("/checkpoint");
            if status == 200 && checkpoint_size(&body).is_some_and(|s| s >= size) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "no checkpoint of size >= {size} within 30 s (last: {status} {})",
                String::from_utf8_lossy(&body)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// Starts `stele serve --no-auth` on `data` (as [`Server::start`]) and SIGKILLs it after
/// `delay`, whether or not it is ready by then: a crash during recovery or startup.
pub fn start_and_kill_after(data: &Path, extra: &[&str], delay: Duration) {
    let mut child = Command::new(stele_bin())
        .arg("serve")
        .arg("--data")
        .arg(data)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .args(extra)
        .args((!extra.contains(&"--no-auth")).then_some("--no-auth"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning stele serve");
    std::thread::sleep(delay);
    signal(&child, libc::SIGKILL);
    let _ = child.wait();
}

/// The tree size on the second line of a checkpoint note.
pub fn checkpoint_size(note: &[u8]) -> Option<u64> {
    std::str::from_utf8(note).ok()?.lines().nth(1)?.parse().ok()
}

fn signal(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) on the pid of a child we have not reaped yet, so it is still ours.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn failure(
    child: &mut Child,
    status: Option<ExitStatus>,
    stderr: &Arc<Mutex<String>>,
) -> StartFailure {
    if status.is_none() {
        signal(child, libc::SIGKILL);
        let _ = child.wait();
    }
    // Give the stderr reader a moment to collect the last lines.
    std::thread::sleep(Duration::from_millis(100));
    StartFailure {
        status,
        stderr: stderr.lock().map(|s| s.clone()).unwrap_or_default(),
    }
}

fn drain_into(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Ok(mut s) = into.lock() {
                        s.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            }
        }
    });
}

/// Waits for `child` up to `limit`; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `stele ARGS…` to completion (killed after [`COMMAND_TIMEOUT`]).
///
/// # Panics
///
/// If it cannot be spawned or does not finish in time.
pub fn run_stele<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut child = Command::new(stele_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning stele");
    let out = Arc::new(Mutex::new(String::new()));
    let err = Arc::new(Mutex::new(String::new()));
    let (o, e) = (
        child.stdout.take().expect("stdout"),
        child.stderr.take().expect("stderr"),
    );
    let readers = [spawn_reader(o, out.clone()), spawn_reader(e, err.clone())];
    let Some(status) = wait_timeout(&mut child, COMMAND_TIMEOUT) else {
        signal(&child, libc::SIGKILL);
        let _ = child.wait();
        panic!("stele did not finish within {COMMAND_TIMEOUT:?}");
    };
    for r in readers {
        let _ = r.join();
    }
    let take =
        |m: &Arc<Mutex<String>>| m.lock().map(|s| s.clone().into_bytes()).unwrap_or_default();
    Output {
        status,
        stdout: take(&out),
        stderr: take(&err),
    }
}

fn spawn_reader(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = from.read_to_end(&mut all);
        if let Ok(mut s) = into.lock() {
            s.push_str(&String::from_utf8_lossy(&all));
        }
    })
}

/// `stele verify --data DIR`.
pub fn verify(data: &Path) -> Output {
    run_stele([
        Path::new("verify").as_os_str(),
        "--data".as_ref(),
        data.as_os_str(),
    ])
}

/// `stele key public --data DIR`, trimmed.
///
/// # Panics
///
/// If the command fails.
pub fn public_key(data: &Path) -> String {
    let out = run_stele([
        Path::new("key").as_os_str(),
        "public".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "stele key public failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8 key")
        .trim()
        .to_owned()
}
