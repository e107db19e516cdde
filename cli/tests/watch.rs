//! `vproto watch` against `vproto serve` processes (issue #15, first "Done when"): the
//! conductor's missing-agent alarm and the agent's return as NDJSON lines, the exits (a signal,
//! a server that goes away, an event nobody serves, a server without events) and the option
//! errors. Readiness comes from the processes' own lines (a server's address on stdout, watch's
//! "subscribed" on stderr); the only waits are the protocol's heartbeats.

use std::{
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    time::{Duration, Instant},
};

use serde_json::Value;

const VPROTO: &str = env!("CARGO_BIN_EXE_vproto");
/// Longest wait for anything the protocol does not time.
const DEADLINE: Duration = Duration::from_secs(20);

/// A child process whose stdout and stderr lines arrive on channels; killed when dropped.
struct Proc {
    child: Child,
    what: String,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Every stderr line taken so far, for failure messages.
    seen: Vec<String>,
}

/// Sends each line of `stream` on a channel, from a thread of its own.
fn lines(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

impl Proc {
    fn spawn(what: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(VPROTO)
            .args(args)
            .env("VPROTO_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {what}: {error}"));
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Proc { child, what: what.to_string(), stdout, stderr, seen: Vec::new() }
    }

    /// `vproto serve ARGS`, once it printed its address.
    fn serve(what: &str, args: &[&str]) -> Proc {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        let mut proc = Proc::spawn(what, &all);
        proc.stdout_line(DEADLINE);
        proc
    }

    /// `vproto watch ARGS`, once it said it subscribed.
    fn watch(args: &[&str]) -> Proc {
        let mut all = vec!["watch"];
        all.extend_from_slice(args);
        let mut proc = Proc::spawn("vproto watch", &all);
        proc.stderr_until("subscribed");
        proc
    }

    fn stdout_line(&mut self, within: Duration) -> String {
        match self.stdout.recv_timeout(within) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("no line within {within:?}; {}", self.stderr_text()),
            Err(RecvTimeoutError::Disconnected) => panic!("stdout closed; {}", self.stderr_text()),
        }
    }

    /// The next event line, parsed, within `within`.
    fn event(&mut self, within: Duration) -> Value {
        let line = self.stdout_line(within);
        serde_json::from_str(&line).unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"))
    }

    /// Reads stderr up to a line containing `text`.
    fn stderr_until(&mut self, text: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!("{}: never said `{text}`\n{}", self.what, self.seen.join("\n")),
            }
        }
    }

    /// Everything it wrote on stderr so far, naming it.
    fn stderr_text(&mut self) -> String {
        self.seen.extend(self.stderr.try_iter());
        format!("{} wrote:\n{}", self.what, self.seen.join("\n"))
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill -{name} {}", self.what);
    }

    /// Waits for it to exit; its exit code and stderr.
    fn exit(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // stderr ends with the process; give its reader the last lines.
                let rest: Vec<String> = self.stderr.iter().collect();
                self.seen.extend(rest);
                return (status.code(), self.seen.join("\n"));
            }
            if Instant::now() > deadline {
                panic!("did not exit; {}", self.stderr_text());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unix(dir: &Path, name: &str) -> String {
    format!("unix:{}", dir.join(name).display())
}

/// An agent saying hello every half second to `conductor`, as endpoint 127.0.0.1:7001.
fn agent(dir: &Path, conductor: &str) -> Proc {
    let listen = unix(dir, "agent.sock");
    Proc::serve("agent", &["agent", "--listen", &listen, "--endpoint", "127.0.0.1:7001", "--conductor", conductor])
}

#[test]
fn watch_shows_agent_missing_within_three_heartbeats_of_a_kill_and_agent_back_on_return() {
    let dir = tempfile::tempdir().unwrap();
    let conductor_addr = unix(dir.path(), "conductor.sock");
    let heartbeat = Duration::from_secs(1);
    let _conductor = Proc::serve("conductor", &["conductor", "--listen", &conductor_addr, "--heartbeat-interval", "1"]);
    let mut watch = Proc::watch(&["--connect", &conductor_addr]);

    let mut first = agent(dir.path(), &conductor_addr);
    let registered = watch.event(DEADLINE);
    assert_eq!(registered["event"], "conductor.agent_registered", "{registered}");
    assert_eq!(registered["params"]["agent"]["endpoint"], "127.0.0.1:7001");
    assert_eq!(registered["params"]["agent"]["alive"], true);

    // Its hellos come every half interval; it is missing once three intervals have passed
    // since the last, which came at most half an interval before the kill.
    first.child.kill().unwrap();
    let killed = Instant::now();
    let missing = watch.event(heartbeat * 3 + Duration::from_secs(2));
    let after = killed.elapsed();
    assert_eq!(missing["event"], "conductor.agent_missing", "{missing}");
    assert_eq!(missing["params"]["agent"]["alive"], false);
    assert!(after <= heartbeat * 3 + Duration::from_millis(250), "agent_missing {after:?} after the kill");
    assert!(after >= heartbeat * 5 / 2 - Duration::from_millis(100), "agent_missing too early: {after:?}");
    drop(first);

    let _second = agent(dir.path(), &conductor_addr);
    let back = watch.event(DEADLINE);
    assert_eq!(back["event"], "conductor.agent_back", "{back}");
    assert_eq!(back["params"]["agent"]["alive"], true);
    assert_eq!(back["params"]["missing_since"], missing["params"]["agent"]["last_seen"]);

    // Its heartbeats are no events; a signal ends the watch with success.
    assert!(watch.stdout.recv_timeout(heartbeat * 2).is_err(), "nothing more");
    watch.signal("INT");
    let (code, stderr) = watch.exit();
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn watch_exits_1_naming_the_server_when_it_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let addr = unix(dir.path(), "conductor.sock");
    let conductor = Proc::serve("conductor", &["conductor", "--listen", &addr]);
    let watch = Proc::watch(&["--connect", &addr, "conductor.agent_missing", "conductor.agent_back"]);
    conductor.signal("TERM");
    let (code, stderr) = watch.exit();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&format!("the connection to {addr} was lost")), "{stderr}");
}

#[test]
fn watch_refuses_what_the_server_does_not_serve() {
    let dir = tempfile::tempdir().unwrap();
    let conductor = unix(dir.path(), "conductor.sock");
    let _conductor = Proc::serve("conductor", &["conductor", "--listen", &conductor]);
    // An event of the schema, but another service's.
    let (code, stderr) = Proc::spawn("watch", &["watch", "--connect", &conductor, "agent.driver_missing"]).exit();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("rpc.subscribe failed: error -32602") && stderr.contains("agent.driver_missing"),
        "{stderr}"
    );

    let driver = unix(dir.path(), "driver.sock");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/driver.json");
    let _driver = Proc::serve("driver", &["driver", "--listen", &driver, "--config", config]);
    let (code, stderr) = Proc::spawn("watch", &["watch", "--connect", &driver]).exit();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&format!("{driver} serves no events")), "{stderr}");
}

#[test]
fn watch_option_errors_exit_2_before_connecting() {
    let nowhere = "unix:/nonexistent/vproto-watch.sock";
    for (args, expected) in [
        (
            vec!["conductor.agent_mising"],
            "vproto watch: unknown event `conductor.agent_mising`; did you mean conductor.agent_back, conductor.agent_missing",
        ),
        (vec!["--versions", "VIFBridge"], "--versions `VIFBridge`: give OBJECT=MAJOR.MINOR"),
        (vec!["--versions", "VIFBrige=1.0"], "is not an object of the schema; did you mean VIFBridge?"),
        (vec!["--versions", "VIFBridge=7.0"], "VIFBridge has no version 7.0"),
        (vec!["--timeout", "soon"], "--timeout"),
    ] {
        let mut all = vec!["watch", "--connect", nowhere];
        all.extend(args.iter().copied());
        let (code, stderr) = Proc::spawn("watch", &all).exit();
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let (code, stderr) = Proc::spawn("watch", &["watch", "--connect", "smoke:signals"]).exit();
    assert_eq!(code, Some(2), "{stderr}");
    let (code, stderr) = Proc::spawn("watch", &["watch", "--connect", nowhere]).exit();
    assert_eq!(code, Some(1), "an unreachable server is not a usage error: {stderr}");
    assert!(stderr.contains(nowhere), "{stderr}");
}
