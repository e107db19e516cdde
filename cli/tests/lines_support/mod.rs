//! A test's child process whose stdout and stderr lines arrive as they are written, for
//! commands that stream lines (`vproto watch`, `vproto guest-info --watch`) and servers whose
//! readiness is a line; killed and reaped when dropped.

#![allow(dead_code)] // each user takes what it needs

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    time::{Duration, Instant},
};

/// Longest wait for anything the protocol under test does not time.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A running child, its output read line by line.
pub struct Lines {
    /// The child.
    pub child: Child,
    what: String,
    /// Its stdout, line by line.
    pub stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Every stderr line taken so far, for failure messages.
    seen: Vec<String>,
}

/// Sends each line of `stream` on a channel, from a thread of its own.
fn forward(stream: impl Read + Send + 'static) -> Receiver<String> {
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

impl Lines {
    /// Starts `command` (stdin closed, stdout and stderr read here); `what` names it in failures.
    pub fn spawn(what: &str, mut command: Command) -> Lines {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {what}: {error}"));
        let stdout = forward(child.stdout.take().expect("piped"));
        let stderr = forward(child.stderr.take().expect("piped"));
        Lines { child, what: what.to_string(), stdout, stderr, seen: Vec::new() }
    }

    /// The next stdout line, within `within`.
    pub fn stdout_line(&mut self, within: Duration) -> String {
        match self.stdout.recv_timeout(within) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("no line within {within:?}; {}", self.stderr_text()),
            Err(RecvTimeoutError::Disconnected) => panic!("stdout closed; {}", self.stderr_text()),
        }
    }

    /// The next stdout line as JSON, within `within`.
    pub fn json_line(&mut self, within: Duration) -> serde_json::Value {
        let line = self.stdout_line(within);
        serde_json::from_str(&line).unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"))
    }

    /// Reads stderr up to a line containing `text`.
    pub fn stderr_until(&mut self, text: &str) {
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
                Err(_) => panic!("never said `{text}`; {}", self.stderr_text()),
            }
        }
    }

    /// Everything it wrote on stderr so far, naming it.
    pub fn stderr_text(&mut self) -> String {
        self.seen.extend(self.stderr.try_iter());
        format!("{} wrote:\n{}", self.what, self.seen.join("\n"))
    }

    /// Sends it signal `name` (`INT`, `TERM`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill -{name} {}", self.what);
    }

    /// Waits (up to [`DEADLINE`]) for it to exit: its exit code and all it wrote on stderr.
    pub fn exit(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // stderr ends with the process: its reader hands over the last lines.
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

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
