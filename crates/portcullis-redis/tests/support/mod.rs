//! Finding the Redis servers the tests run against.
//!
//! `scripts/test.sh` starts them and exports `REDIS_URL` (one server) and
//! `REDIS_CLUSTER_URLS` (a 3-master cluster). Without those variables a plain
//! `cargo test` skips these tests with one line saying how to run them;
//! under CI (`CI` set) a missing server fails the test instead.

#![allow(dead_code, unreachable_pub)]

use portcullis_redis::{RedisConfig, RedisControlPlane};

/// `config` with a key prefix of its own: a fresh control plane for each
/// store a test makes.
pub fn fresh(config: &RedisConfig) -> RedisConfig {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    config
        .clone()
        .key_prefix(format!("{}-{n}", config.prefix()))
}

/// A control-plane store on `config`, with a generous deadline: the tests
/// that use it check exactness and propagation, and the shared test machine
/// is sometimes loaded far past its 2 cores.
pub async fn connect_control_plane(config: &RedisConfig) -> RedisControlPlane {
    let config = config.clone().timeout(std::time::Duration::from_secs(10));
    RedisControlPlane::connect(&config, portcullis_control_plane::StoreOptions::default())
        .await
        .expect("connects")
}

fn required(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set: under CI the Redis tests must run (see scripts/test.sh)")
        }
        _ => {
            eprintln!(
                "skipped: {var} is not set; run `bash scripts/test.sh` (which starts Redis) to run the Redis tests"
            );
            None
        }
    }
}

/// One Redis server, with a key prefix unique to this test.
pub fn single(test: &str) -> Option<RedisConfig> {
    let url = required("REDIS_URL")?;
    Some(RedisConfig::single(url).key_prefix(unique_prefix(test)))
}

/// The Redis Cluster, with a key prefix unique to this test.
pub fn cluster(test: &str) -> Option<RedisConfig> {
    let urls = required("REDIS_CLUSTER_URLS")?;
    Some(RedisConfig::cluster(urls.split(',').map(str::to_owned)).key_prefix(unique_prefix(test)))
}

/// Both deployments, each as (name, config).
pub fn backends(test: &str) -> Vec<(&'static str, RedisConfig)> {
    let mut all = Vec::new();
    if let Some(config) = single(test) {
        all.push(("redis", config));
    }
    if let Some(config) = cluster(test) {
        all.push(("cluster", config));
    }
    all
}

fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("pt:{test}:{}:{nanos}", std::process::id())
}

/// How many times a private server or cluster is started on fresh ports
/// before a test gives up.
const ATTEMPTS: usize = 5;

/// `n` distinct free loopback ports: every listener is held until all are
/// chosen, so none is handed out twice. They are released before a server
/// binds them, so another process may take one first: the servers below
/// then start again on new ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound listener").port())
        .collect()
}

/// Starts `redis-server` with `args` on `port` and waits (5 s at most) until
/// it accepts connections; `Err` says why not (it exited, say because another
/// process took the port, or it never answered), after killing it.
pub fn spawn_redis(port: u16, args: &[&std::ffi::OsStr]) -> Result<std::process::Child, String> {
    let mut child = std::process::Command::new("redis-server")
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed (scripts/test.sh installs it)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("redis-server on port {port} exited: {status}"));
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(child);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "redis-server on port {port} did not answer within 5 s"
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Runs `start` with fresh ports until it succeeds, at most [`ATTEMPTS`]
/// times, then panics with every failure.
fn with_retries<T>(what: &str, mut start: impl FnMut() -> Result<T, String>) -> T {
    let mut failures = Vec::new();
    for _ in 0..ATTEMPTS {
        match start() {
            Ok(started) => return started,
            Err(why) => {
                eprintln!("{what}: {why}; retrying on new ports");
                failures.push(why);
            }
        }
    }
    panic!("{what} failed {ATTEMPTS} times: {}", failures.join("; "))
}

/// A private `redis-server` on a free loopback port, stopped on drop: for
/// tests that stop the server, pause it or read its global statistics, so
/// that no other test disturbs them (or is disturbed).
pub struct PrivateServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateServer {
    /// Starts one, on new ports until one works (see [`free_ports`]).
    pub fn start() -> PrivateServer {
        with_retries("a private redis-server", || {
            let port = free_ports(1)[0];
            let child = spawn_redis(port, &[])?;
            Ok(PrivateServer {
                port,
                child: Some(child),
            })
        })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (killed, as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, which clients are configured with.
    pub fn restart(&mut self) {
        self.stop();
        let child = spawn_redis(self.port, &[])
            .unwrap_or_else(|why| panic!("the private redis-server restarts: {why}"));
        self.child = Some(child);
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One node of a [`PrivateCluster`]: a cluster-enabled `redis-server` whose
/// state lives in `dir`, so that it rejoins its cluster when restarted.
///
/// Its cluster bus gets a free port of its own (`--cluster-port`): Redis's
/// default, the client port + 10,000, is past 65,535 for a third of the
/// kernel's ephemeral ports, and then the server does not start.
pub struct ClusterNode {
    pub port: u16,
    bus_port: u16,
    dir: std::path::PathBuf,
    durable: bool,
    child: Option<std::process::Child>,
}

impl ClusterNode {
    /// With `durable`, the node keeps its data across a `kill -9` (an
    /// append-only file, fsync on every write), as a production master
    /// with persistence.
    fn start(
        port: u16,
        bus_port: u16,
        dir: &std::path::Path,
        durable: bool,
    ) -> Result<ClusterNode, String> {
        let _ = std::fs::create_dir_all(dir);
        let bus = bus_port.to_string();
        let persistence: &[&str] = if durable {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &[]
        };
        let args: Vec<&std::ffi::OsStr> = persistence
            .iter()
            .map(|a| a.as_ref())
            .chain([
                "--cluster-enabled".as_ref(),
                "yes".as_ref(),
                "--cluster-port".as_ref(),
                bus.as_ref(),
                "--cluster-config-file".as_ref(),
                "nodes.conf".as_ref(),
                "--cluster-node-timeout".as_ref(),
                "1000".as_ref(),
                "--dir".as_ref(),
                dir.as_os_str(),
            ])
            .collect();
        let child = spawn_redis(port, &args)?;
        Ok(ClusterNode {
            port,
            bus_port,
            dir: dir.to_path_buf(),
            durable,
            child: Some(child),
        })
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the node again on its ports, from its own `nodes.conf`.
    pub fn restart(&mut self) {
        self.stop();
        let dir = self.dir.clone();
        *self = ClusterNode::start(self.port, self.bus_port, &dir, self.durable)
            .unwrap_or_else(|why| panic!("the cluster node restarts: {why}"));
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn cluster_ok(port: u16) -> bool {
    std::process::Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "cluster",
            "info",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
        .unwrap_or(false)
}

/// A private 3-master Redis Cluster on free ports, its nodes stopped and its
/// directory removed on drop: for tests that stop or pause nodes.
pub struct PrivateCluster {
    pub nodes: Vec<ClusterNode>,
    root: std::path::PathBuf,
}

impl PrivateCluster {
    /// Starts one, on new ports until the nodes start and the cluster forms.
    pub fn start(name: &str) -> PrivateCluster {
        Self::start_with(name, false)
    }

    /// [`start`](Self::start) with nodes that keep their data across a
    /// `kill -9` (see [`ClusterNode`]).
    pub fn start_durable(name: &str) -> PrivateCluster {
        Self::start_with(name, true)
    }

    fn start_with(name: &str, durable: bool) -> PrivateCluster {
        let mut attempt = 0;
        with_retries("a private redis cluster", || {
            attempt += 1;
            let root = std::env::temp_dir().join(format!(
                "portcullis-{name}-{}-{attempt}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&root);
            // Dropped (stopped, directory removed) on every early return.
            let mut cluster = PrivateCluster {
                nodes: Vec::new(),
                root: root.clone(),
            };
            let ports = free_ports(6);
            for (port, bus) in ports[..3].iter().zip(&ports[3..]) {
                let node = ClusterNode::start(*port, *bus, &root.join(port.to_string()), durable)?;
                cluster.nodes.push(node);
            }
            let created = std::process::Command::new("redis-cli")
                .arg("--cluster")
                .arg("create")
                .args(cluster.addresses())
                .args(["--cluster-replicas", "0", "--cluster-yes"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("redis-cli runs");
            if !created.success() {
                return Err(format!("the cluster did not form ({created})"));
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !cluster.nodes.iter().all(|n| cluster_ok(n.port)) {
                if std::time::Instant::now() >= deadline {
                    return Err("the cluster did not become ok within 10 s".to_owned());
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Ok(cluster)
        })
    }

    /// `127.0.0.1:<port>` of each node.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect()
    }

    /// The index in [`nodes`](Self::nodes) of the master that serves the
    /// keys with the hash tag `tag` (such as `{prefix:cp}`).
    pub fn owner_of(&self, tag: &str) -> usize {
        let ask = |args: &[&str]| {
            let out = std::process::Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-p", &self.nodes[0].port.to_string()])
                .args(args)
                .output()
                .expect("redis-cli runs");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let slot: u16 = ask(&["cluster", "keyslot", tag])
            .trim()
            .parse()
            .expect("a slot");
        // redis-cli renders CLUSTER SLOTS flat: start, end, ip, port, id,
        // ... per range.
        let slots = ask(&["cluster", "slots"]);
        let lines: Vec<&str> = slots.lines().map(str::trim).collect();
        for window in lines.windows(4) {
            if let (Ok(start), Ok(end), "127.0.0.1", Ok(port)) = (
                window[0].parse::<u16>(),
                window[1].parse::<u16>(),
                window[2],
                window[3].parse::<u16>(),
            ) && (start..=end).contains(&slot)
                && let Some(i) = self.nodes.iter().position(|n| n.port == port)
            {
                return i;
            }
        }
        panic!("no node serves slot {slot}:\n{slots}")
    }

    /// `redis://127.0.0.1:<port>` of each node.
    pub fn urls(&self) -> Vec<String> {
        self.addresses()
            .iter()
            .map(|a| format!("redis://{a}"))
            .collect()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// One replica: its own control-plane connection, key cache (following
/// every replica's changes), quota engine (its background task running) and
/// layers in front of a service.
pub struct Replica {
    pub store: RedisControlPlane,
    pub cache: std::sync::Arc<portcullis_control_plane::KeyCache<RedisControlPlane>>,
    pub engine: portcullis_control_plane::QuotaEngine<RedisControlPlane>,
    pub keys:
        portcullis_api_key::ApiKeyLayer<portcullis_control_plane::KeyCache<RedisControlPlane>>,
    _tasks: (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>),
}

impl Replica {
    /// Starts one on `config`, its engine flushing every `flush`.
    pub async fn start(config: &RedisConfig, flush: std::time::Duration) -> Replica {
        let store = connect_control_plane(config).await;
        let keys = portcullis_api_key::ApiKeys::with_store(
            portcullis_control_plane::KeyCache::load(store.clone())
                .await
                .expect("loads"),
        );
        let cache = keys.store().clone();
        let sync = cache.spawn_sync();
        let engine = portcullis_control_plane::QuotaEngine::new(store.clone());
        let flusher = engine.spawn_flusher(flush);
        Replica {
            engine,
            keys: keys.layer("api1", "prod"),
            store,
            cache,
            _tasks: (sync, flusher),
        }
    }

    /// One request with the API key `value`: its status.
    pub async fn call(&self, value: &str) -> http::StatusCode {
        use tower::ServiceExt;
        let service = tower::ServiceBuilder::new()
            .layer(self.keys.clone())
            // A store failure answers 500 (and fails the test) instead of
            // admitting an uncounted request.
            .layer(
                portcullis_quota::QuotaLayer::with_store(self.engine.clone())
                    .on_store_error(portcullis_quota::OnStoreError::Refuse),
            )
            .service_fn(|_: http::Request<()>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
            });
        let request = http::Request::get("/")
            .header("x-api-key", value)
            .body(())
            .expect("a valid request");
        service.oneshot(request).await.expect("infallible").status()
    }
}

/// `cmdstat_<command>`'s calls and microseconds from `INFO commandstats`.
pub fn command_stats(port: u16, command: &str) -> (u64, u64) {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "info", "commandstats"])
        .output()
        .expect("redis-cli runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("cmdstat_{command}:");
    let Some(line) = text.lines().find(|l| l.starts_with(&prefix)) else {
        return (0, 0);
    };
    let field = |name: &str| {
        line.split(',')
            .find_map(|kv| kv.split_once('=').filter(|(k, _)| k.ends_with(name)))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("calls"), field("usec"))
}

/// Zeroes the server's command statistics (`CONFIG RESETSTAT`).
pub fn reset_stats(port: u16) {
    let status = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "config", "resetstat"])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("redis-cli runs");
    assert!(status.success());
}
