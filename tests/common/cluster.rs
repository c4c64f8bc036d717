//! RabbitMQ nodes of a test's own beside the machine's default node (which is never touched):
//! each with its own name, ports, data, logs and Erlang cookie, started from the package's server
//! scripts as `../shared/rabbitmq/CLUSTER.md` describes, joined into one cluster, and stopped and
//! deleted when dropped (also when the test fails). Faults: [`Cluster::freeze`] (SIGSTOP) and
//! [`Cluster::thaw`], [`Cluster::kill`], [`Cluster::stop_node`] and [`Cluster::start_node`].

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The package's own scripts, which run as the caller (not the wrappers on the PATH, which
/// switch to the `rabbitmq` user).
fn sbin() -> PathBuf {
    let lib = Path::new("/usr/lib/rabbitmq/lib");
    let server = std::fs::read_dir(lib)
        .expect("RabbitMQ is installed")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("rabbitmq_server-"))
        })
        .expect("the RabbitMQ server package");
    server.join("sbin")
}

pub struct Node {
    pub name: String,
    pub port: u16,
    dist_port: u16,
    dir: PathBuf,
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    dir: tempfile::TempDir,
    /// The first of the ports the CLI tools of these nodes may use.
    ctl_port: u16,
}

impl Cluster {
    /// Starts `count` nodes and joins them to the first one.
    pub fn start(count: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let cookie = home.join(".erlang.cookie");
        std::fs::write(
            &cookie,
            uuid::Uuid::new_v4().simple().to_string().to_uppercase(),
        )
        .unwrap();
        Command::new("chmod")
            .arg("400")
            .arg(&cookie)
            .status()
            .unwrap();
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let nodes = (0..count)
            .map(|i| {
                let node_dir = dir.path().join(format!("node{i}"));
                std::fs::create_dir_all(&node_dir).unwrap();
                // As production clusters should: a partitioned minority pauses.
                let conf = "loopback_users = none\ncluster_partition_handling = pause_minority\n";
                std::fs::write(node_dir.join("rabbitmq.conf"), conf).unwrap();
                std::fs::write(node_dir.join("rabbitmq-env.conf"), "").unwrap();
                // A frozen node blocks new connections to every node until the others take it
                // for down, after about net_ticktime (60 s by default): 6 s bounds that here.
                std::fs::write(
                    node_dir.join("advanced.config"),
                    "[{kernel, [{net_ticktime, 6}]}].\n",
                )
                .unwrap();
                std::fs::write(node_dir.join("enabled_plugins"), "[].\n").unwrap();
                Node {
                    name: format!("rabbitc{i}-{tag}@localhost"),
                    port: super::free_port(),
                    dist_port: super::free_port(),
                    dir: node_dir,
                }
            })
            .collect();
        let cluster = Self {
            nodes,
            dir,
            ctl_port: super::free_port(),
        };
        for i in 0..count {
            cluster.start_node(i);
        }
        for i in 1..count {
            let first = cluster.nodes[0].name.clone();
            cluster.ctl(i, &["stop_app"]);
            cluster.ctl(i, &["join_cluster", &first]);
            cluster.ctl(i, &["start_app"]);
        }
        cluster
    }

    fn command(&self, node: usize, script: &str) -> Command {
        let node = &self.nodes[node];
        let mut command = Command::new(sbin().join(script));
        for (key, _) in std::env::vars() {
            if key.starts_with("RABBITMQ_") || key.starts_with("ERL_") {
                command.env_remove(key);
            }
        }
        let at = |name: &str| node.dir.join(name);
        command
            .env("HOME", self.dir.path().join("home"))
            .env("RABBITMQ_NODENAME", &node.name)
            .env("RABBITMQ_USE_LONGNAME", "false")
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", node.port.to_string())
            .env("RABBITMQ_DIST_PORT", node.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", at("mnesia"))
            .env("RABBITMQ_LOG_BASE", at("log"))
            .env("RABBITMQ_PID_FILE", at("pid"))
            .env("RABBITMQ_CONFIG_FILE", at("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", at("advanced.config"))
            .env("RABBITMQ_CONF_ENV_FILE", at("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", at("enabled_plugins"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", at("plugins-expand"))
            .env("RABBITMQ_CTL_DIST_PORT_MIN", self.ctl_port.to_string())
            .env(
                "RABBITMQ_CTL_DIST_PORT_MAX",
                (self.ctl_port + 10).to_string(),
            )
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            // A node that fails to start writes its crash dump here, not where the test runs.
            .env("ERL_CRASH_DUMP", at("erl_crash.dump"));
        command
    }

    /// `rabbitmqctl -n NODE args`, to the end; panics when it fails.
    pub fn ctl(&self, node: usize, args: &[&str]) -> Output {
        let output = self
            .command(node, "rabbitmqctl")
            .args(["-n", &self.nodes[node].name])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "rabbitmqctl {args:?} on node {node}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Starts node `node` (again) with its data, and waits until it runs.
    pub fn start_node(&self, node: usize) {
        let status = self
            .command(node, "rabbitmq-server")
            .arg("-detached")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let pid_file = self.nodes[node].dir.join("pid");
        // `wait` follows the start from the pid file on (`await_startup` needs a node that
        // already answers).
        let _ = std::fs::remove_file(&pid_file);
        self.ctl(
            node,
            &["wait", pid_file.to_str().unwrap(), "--timeout", "60"],
        );
    }

    /// A clean stop of node `node`.
    pub fn stop_node(&self, node: usize) {
        self.ctl(node, &["stop"]);
    }

    /// The node (by index) of the newest connection named `name` of process `pid`, as node
    /// `asked` sees the cluster (a process leaving a node may keep its old connection there for
    /// a moment).
    pub fn node_with_newest_connection(&self, asked: usize, pid: u32, name: &str) -> Option<usize> {
        self.connections_of(asked, pid)
            .into_iter()
            .filter(|connection| connection.line.contains(name))
            .max_by_key(|connection| connection.connected_at)
            .and_then(|connection| {
                self.nodes
                    .iter()
                    .position(|node| node.port == connection.port)
            })
    }

    /// The node (by index) that leads quorum queue `queue`, as node `asked` sees the cluster.
    pub fn leader_of(&self, asked: usize, queue: &str) -> Option<usize> {
        let listed = self.ctl(
            asked,
            &["list_queues", "name", "leader", "--no-table-headers"],
        );
        let leader = String::from_utf8_lossy(&listed.stdout)
            .lines()
            .find_map(|line| {
                let (name, leader) = line.split_once('\t')?;
                (name == queue).then(|| leader.trim().to_owned())
            })?;
        self.nodes.iter().position(|node| node.name == leader)
    }

    /// Closes every connection of process `pid` to node `node`, as an operator may
    /// (`rabbitmqctl close_connection`).
    pub fn close_connections_to(&self, node: usize, pid: u32) {
        for connection in self.connections_of(node, pid) {
            if connection.port == self.nodes[node].port {
                // A connection that closed meanwhile is not an error here.
                let _ = self
                    .command(node, "rabbitmqctl")
                    .args(["-n", &self.nodes[node].name])
                    .args(["close_connection", &connection.pid, "moved by the test"])
                    .output();
            }
        }
    }

    /// The connections of process `pid`, as node `asked` lists them: the broker's view
    /// (`peer_port`, `port`) matched to the process's own sockets (`ss`: local and peer port).
    fn connections_of(&self, asked: usize, pid: u32) -> Vec<BrokerConnection> {
        let own = socket_ports_of(pid);
        let listed = self.ctl(
            asked,
            &[
                "list_connections",
                "pid",
                "peer_port",
                "port",
                "connected_at",
                "client_properties",
                "--no-table-headers",
            ],
        );
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let (pid, peer_port, port, connected_at) = (
                    fields.next()?,
                    fields.next()?,
                    fields.next()?,
                    fields.next()?,
                );
                let (peer_port, port) = (peer_port.parse().ok()?, port.parse().ok()?);
                if !own.contains(&(peer_port, port)) {
                    return None;
                }
                Some(BrokerConnection {
                    pid: pid.to_owned(),
                    port,
                    connected_at: connected_at.parse().ok()?,
                    line: line.to_owned(),
                })
            })
            .collect()
    }

    /// Every node's URL, comma-separated, as `WECOM_AMQP_URL` takes a cluster.
    pub fn urls(&self) -> String {
        (0..self.nodes.len())
            .map(|node| self.url(node))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/%2f` of node `node`.
    pub fn url(&self, node: usize) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.nodes[node].port)
    }

    /// The PID of node `node`'s Erlang VM, checked to be that node's before any signal.
    fn beam_pid(&self, node: usize) -> Option<String> {
        let pid = std::fs::read_to_string(self.nodes[node].dir.join("pid")).ok()?;
        let pid = pid.trim().to_owned();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        // Its command line names the cluster's HOME, which is this test's own.
        let dir = self.dir.path().join("home").to_string_lossy().into_owned();
        String::from_utf8_lossy(&cmdline)
            .contains(&dir)
            .then_some(pid)
    }

    fn signal(&self, node: usize, signal: &str) {
        let pid = self.beam_pid(node).unwrap_or_else(|| {
            let file = std::fs::read_to_string(self.nodes[node].dir.join("pid"));
            panic!("node {node} does not run: pid file {file:?}")
        });
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success());
    }

    /// Freezes node `node` (SIGSTOP): its TCP connections stay open and say nothing.
    pub fn freeze(&self, node: usize) {
        self.signal(node, "-STOP");
    }

    pub fn thaw(&self, node: usize) {
        self.signal(node, "-CONT");
    }

    /// `kill -9` of node `node`.
    pub fn kill(&self, node: usize) {
        self.signal(node, "-KILL");
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in 0..self.nodes.len() {
            if let Some(pid) = self.beam_pid(node) {
                // A frozen node stops only once thawed; a stop that hangs is cut short.
                let _ = Command::new("kill").args(["-CONT", &pid]).status();
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
        }
    }
}

/// A client connection as the broker lists it.
struct BrokerConnection {
    /// The connection's Erlang process, as `close_connection` takes it.
    pid: String,
    /// The node's AMQP port it came in on.
    port: u16,
    /// When, in milliseconds since the epoch.
    connected_at: u64,
    /// The whole listed line (its client properties name the connection).
    line: String,
}

/// (local port, peer port) of each established TCP connection of process `pid`.
fn socket_ports_of(pid: u32) -> Vec<(u16, u16)> {
    let output = Command::new("ss")
        .args(["-Htnp", "state", "established"])
        .output()
        .expect("ss (iproute2) is installed");
    let owner = format!("pid={pid},");
    let port = |address: &str| address.rsplit(':').next()?.parse().ok();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains(&owner))
        // Recv-Q Send-Q Local:Port Peer:Port Process
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(2);
            Some((port(fields.next()?)?, port(fields.next()?)?))
        })
        .collect()
}
