//! A private RabbitMQ broker for a test: Debian's `rabbitmq-server` run from a temporary
//! directory (its own Mnesia and log directories, node name, AMQP port, Erlang distribution
//! port and epmd port, so several run side by side and none touches the machine's broker),
//! started and waited for until it speaks AMQP, killable and restartable on the same ports and
//! data (durable queues and persistent messages survive a restart), stopped on drop.
//! [`Broker::start_with_tls`] adds an `amqps://` listener with the certificate given;
//! [`Broker::unstarted`] reserves the ports without starting it, for what must start first.
//!
//! ```no_run
//! use vproto_test_support::rabbitmq::Broker;
//! if let Some(why) = Broker::skip_reason() {
//!     return vproto_test_support::missing_peer(&why);
//! }
//! let mut broker = Broker::start();
//! let url = broker.url(); // amqp://127.0.0.1:PORT
//! broker.kill();
//! broker.restart();
//! ```

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use crate::Process;

/// Debian's start script (the one `/usr/sbin/rabbitmq-server` runs as the rabbitmq user).
pub const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
/// Erlang's port mapper, to stop the private one.
const EPMD: &str = "/usr/bin/epmd";
/// Longest wait for a broker to accept AMQP connections.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A private broker; see the module.
pub struct Broker {
    dir: PathBuf,
    port: u16,
    dist_port: u16,
    epmd_port: u16,
    /// The `amqps://` port, when the broker has a TLS listener.
    tls_port: Option<u16>,
    node: String,
    process: Option<Process>,
    starts: u32,
}

/// The TLS listener of a broker: its certificate (chain) and private key, as PEM. Clients are
/// not asked for certificates.
pub struct BrokerTls {
    /// The server's certificate chain, leaf first.
    pub cert_pem: String,
    /// Its private key (PKCS#8, or any form Erlang's ssl reads).
    pub key_pem: String,
}

/// A port free on loopback now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port on 127.0.0.1");
    listener.local_addr().expect("local address").port()
}

impl Broker {
    /// Why no broker can be started here (`rabbitmq-server` is not installed), if so.
    pub fn skip_reason() -> Option<String> {
        (!Path::new(SERVER).exists() || !Path::new(EPMD).exists())
            .then(|| format!("RabbitMQ is missing ({SERVER}, {EPMD}): apt-get install rabbitmq-server"))
    }

    /// Starts a broker on free loopback ports and waits until it accepts AMQP connections
    /// (panics, showing its log, if it does not within two minutes).
    pub fn start() -> Broker {
        let mut broker = Broker::unstarted();
        broker.launch();
        broker
    }

    /// Starts a broker as [`Broker::start`] does, with an `amqps://` listener too, on a port of
    /// its own ([`Broker::tls_url`]), presenting `tls`.
    pub fn start_with_tls(tls: BrokerTls) -> Broker {
        let mut broker = Broker::unstarted();
        let cert = broker.dir.join("server.pem");
        let key = broker.dir.join("server.key");
        let write = |path: &Path, text: &str| {
            std::fs::write(path, text).unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()))
        };
        write(&cert, &tls.cert_pem);
        write(&key, &tls.key_pem);
        let tls_port = free_port();
        // `RABBITMQ_CONFIG_FILE` is `DIR/rabbitmq`: the broker reads `DIR/rabbitmq.conf`.
        let config = format!(
            "listeners.ssl.default = 127.0.0.1:{tls_port}\n\
             ssl_options.certfile = {}\n\
             ssl_options.keyfile = {}\n\
             ssl_options.verify = verify_none\n\
             ssl_options.fail_if_no_peer_cert = false\n",
            cert.display(),
            key.display()
        );
        write(&broker.dir.join("rabbitmq.conf"), &config);
        broker.tls_port = Some(tls_port);
        broker.launch();
        broker
    }

    /// A broker with its directory and ports chosen but not started: [`Broker::restart`]
    /// starts it (for a client or server that must be up before its broker).
    pub fn unstarted() -> Broker {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let unique = format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let dir = std::env::temp_dir().join(format!("vproto-rabbitmq-{unique}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
        Broker {
            node: format!("vproto{}@localhost", unique.replace('-', "_")),
            dir,
            port: free_port(),
            dist_port: free_port(),
            epmd_port: free_port(),
            tls_port: None,
            process: None,
            starts: 0,
        }
    }

    /// The broker's address, `amqp://127.0.0.1:PORT` (user and password `guest`, vhost `/`).
    pub fn url(&self) -> String {
        format!("amqp://127.0.0.1:{}", self.port)
    }

    /// Its TLS listener's address, `amqps://127.0.0.1:PORT`, when it has one.
    pub fn tls_url(&self) -> Option<String> {
        self.tls_port.map(|port| format!("amqps://127.0.0.1:{port}"))
    }

    /// Its AMQP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What it logged (its log file, then its stderr).
    pub fn log(&self) -> String {
        let file = std::fs::read_to_string(self.dir.join("rabbit.log")).unwrap_or_default();
        let stderr = self.process.as_ref().map(Process::log).unwrap_or_default();
        format!("{file}{stderr}")
    }

    /// Kills it with SIGKILL (no clean shutdown) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts it again on the same ports, node and data (or for the first time, when
    /// [`Broker::unstarted`]), and waits until it accepts AMQP connections.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    fn launch(&mut self) {
        self.starts += 1;
        let dir = &self.dir;
        let mut command = Command::new(SERVER);
        command
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            // The start script then `exec`s the VM instead of waiting on it in the background:
            // the child is the broker, and killing it kills the broker.
            .env("RUNNING_UNDER_SYSTEMD", "true")
            // The Erlang cookie is written to $HOME.
            .env("HOME", dir)
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_LOGS", dir.join("rabbit.log"))
            // Files that do not exist: none of the machine's configuration applies.
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", dir.join("rabbit.pid"))
            .current_dir(dir);
        let log = dir.join(format!("stderr-{}.log", self.starts));
        self.process = Some(Process::spawn(command, log));
        self.wait_ready();
    }

    /// Waits until the broker answers an AMQP protocol header with `connection.start` (and
    /// its TLS listener, if any, accepts connections).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let tls_ready = self.tls_port.is_none_or(|port| TcpStream::connect(("127.0.0.1", port)).is_ok());
            if speaks_amqp(self.port) && tls_ready {
                return;
            }
            if let Some(process) = self.process.as_mut() {
                if let Ok(Some(status)) = process.child.try_wait() {
                    panic!("rabbitmq-server exited ({status}) before accepting connections:\n{}", self.log());
                }
            }
            if Instant::now() > deadline {
                panic!("rabbitmq-server did not accept AMQP connections within {START_TIMEOUT:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether something on `port` answers AMQP 0-9-1's protocol header with a method frame (the
/// broker's `connection.start`).
fn speaks_amqp(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream.write_all(b"AMQP\x00\x00\x09\x01").is_err() {
        return false;
    }
    let mut frame_type = [0u8; 1];
    matches!(stream.read(&mut frame_type), Ok(1) if frame_type[0] == 1)
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        // The private epmd outlives the node; stop it, then forget the data.
        let _ = Command::new(EPMD)
            .arg("-port")
            .arg(self.epmd_port.to_string())
            .arg("-kill")
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
