//! A private PostgreSQL cluster for a test: Debian's `postgresql` binaries (`initdb`,
//! `pg_ctl`, `createdb`, found under `/usr/lib/postgresql/*/bin` or in `PATH`) run on a cluster made in a
//! temporary directory, listening on a free loopback port and a Unix socket in that directory,
//! stopped (immediately) and removed on drop. PostgreSQL refuses to run as root: as root the
//! cluster is made and run as the `postgres` user Debian's package creates (`runuser`), the
//! directory handed to it; otherwise as the user running the test.
//!
//! ```no_run
//! use vproto_test_support::postgres::Cluster;
//! if let Some(why) = Cluster::skip_reason() {
//!     return vproto_test_support::missing_peer(&why);
//! }
//! let cluster = Cluster::start();
//! let url = cluster.create_database("state"); // postgres://vproto@127.0.0.1:PORT/state
//! ```

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// The superuser the cluster is made with (trust authentication, loopback only).
const USER: &str = "vproto";

/// A private cluster; see the module.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// `runuser -u postgres --` when running as root.
    run_as: Option<&'static str>,
}

/// The programs the harness runs.
const PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "createdb"];

/// The directory holding the PostgreSQL programs: Debian's `/usr/lib/postgresql/VERSION/bin`
/// of the highest version, else one in `PATH`.
fn bin_dir() -> Option<PathBuf> {
    let complete = |dir: &Path| PROGRAMS.iter().all(|program| dir.join(program).is_file());
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            complete(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).find(|dir| complete(dir))
}

/// A port free on loopback now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port on 127.0.0.1");
    listener.local_addr().expect("local address").port()
}

/// The uid and gid of the `postgres` user, from `/etc/passwd`.
fn postgres_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&"postgres") && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

impl Cluster {
    /// Why no cluster can be made here (the binaries, or as root the `postgres` user or
    /// `runuser`, are missing), if so.
    pub fn skip_reason() -> Option<String> {
        let install = "apt-get install postgresql";
        if bin_dir().is_none() {
            return Some(format!("PostgreSQL is missing (no initdb, pg_ctl and createdb in /usr/lib/postgresql/*/bin or PATH): {install}"));
        }
        if crate::is_root() && (postgres_ids().is_none() || crate::first_missing(&["runuser"]).is_some()) {
            return Some(format!("running as root needs the postgres user and runuser: {install}"));
        }
        None
    }

    /// Makes a cluster and starts it, waiting until it accepts connections. Panics (with the
    /// server's log) when it cannot.
    pub fn start() -> Cluster {
        let bin = bin_dir().expect("PostgreSQL binaries (see Cluster::skip_reason)");
        let dir = tempfile::Builder::new().prefix("vproto-pg").tempdir().expect("a temporary directory");
        let run_as = if crate::is_root() {
            let (uid, gid) = postgres_ids().expect("the postgres user (see Cluster::skip_reason)");
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("hand the directory to postgres");
            Some("postgres")
        } else {
            None
        };
        let cluster = Cluster { dir, bin, port: free_port(), run_as };
        let data = cluster.data();
        cluster.run("initdb", &["-D", &data, "-U", USER, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]);
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            cluster.port,
            cluster.dir.path().display()
        );
        let log = cluster.log_path();
        cluster.run("pg_ctl", &["-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start"]);
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn log_path(&self) -> String {
        self.dir.path().join("server.log").display().to_string()
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs `program` of the PostgreSQL binaries with `args` as the cluster's user; panics
    /// with its output and the server log when it fails.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let path = self.bin.join(program);
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&path);
                command
            }
            None => Command::new(&path),
        };
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
        if !output.status.success() {
            panic!(
                "{program} {args:?} failed ({}):\n{}{}\nserver log:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                self.log()
            );
        }
        output
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of its Unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The URL of database `name` over TCP on loopback.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` (`createdb`) and answers its URL.
    pub fn create_database(&self, name: &str) -> String {
        let port = self.port.to_string();
        self.run("createdb", &["-h", "127.0.0.1", "-p", &port, "-U", USER, name]);
        self.url(name)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let path = self.bin.join("pg_ctl");
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&path);
                command
            }
            None => Command::new(&path),
        };
        let _ = command.args(["-D", &data, "-m", "immediate", "-w", "stop"]).output();
    }
}
