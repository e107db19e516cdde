//! `vproto watch` against `vproto serve` processes (issue #15, first "Done when"): the
//! conductor's missing-agent alarm and the agent's return as NDJSON lines, the exits (a signal,
//! a server that goes away, an event nobody serves, a server without events) and the option
//! errors. Readiness comes from the processes' own lines (a server's address on stdout, watch's
//! "subscribed" on stderr); the only waits are the protocol's heartbeats.

mod lines_support;

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use lines_support::{Lines, DEADLINE};

/// `vproto ARGS`, started.
fn vproto(what: &str, args: &[&str]) -> Lines {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vproto"));
    command.args(args).env("VPROTO_LOG", "info");
    Lines::spawn(what, command)
}

/// `vproto serve ARGS`, once it printed its address.
fn serve(what: &str, args: &[&str]) -> Lines {
    // A conductor's state is its own, not the machine's default file other tests share.
    let state: &[&str] = if args.first() == Some(&"conductor") { &["--state", "memory"] } else { &[] };
    let mut lines = vproto(what, &[&["serve"], args, state].concat());
    lines.stdout_line(DEADLINE);
    lines
}

/// `vproto watch ARGS`, once it said it subscribed.
fn watch(args: &[&str]) -> Lines {
    let mut lines = vproto("vproto watch", &[&["watch"], args].concat());
    lines.stderr_until("subscribed");
    lines
}

fn unix(dir: &Path, name: &str) -> String {
    format!("unix:{}", dir.join(name).display())
}

/// An agent saying hello every half second to `conductor`, as endpoint 127.0.0.1:7001.
fn agent(dir: &Path, conductor: &str) -> Lines {
    let listen = unix(dir, "agent.sock");
    serve("agent", &["agent", "--listen", &listen, "--endpoint", "127.0.0.1:7001", "--conductor", conductor])
}

#[test]
fn watch_shows_agent_missing_within_three_heartbeats_of_a_kill_and_agent_back_on_return() {
    let dir = tempfile::tempdir().unwrap();
    let conductor_addr = unix(dir.path(), "conductor.sock");
    let heartbeat = Duration::from_secs(1);
    let _conductor = serve("conductor", &["conductor", "--listen", &conductor_addr, "--heartbeat-interval", "1"]);
    let mut watch = watch(&["--connect", &conductor_addr]);

    let mut first = agent(dir.path(), &conductor_addr);
    let registered = watch.json_line(DEADLINE);
    assert_eq!(registered["event"], "conductor.agent_registered", "{registered}");
    assert_eq!(registered["params"]["agent"]["endpoint"], "127.0.0.1:7001");
    assert_eq!(registered["params"]["agent"]["alive"], true);

    // Its hellos come every half interval; it is missing once three intervals have passed
    // since the last, which came at most half an interval before the kill.
    first.child.kill().unwrap();
    let killed = Instant::now();
    let missing = watch.json_line(heartbeat * 3 + Duration::from_secs(2));
    let after = killed.elapsed();
    assert_eq!(missing["event"], "conductor.agent_missing", "{missing}");
    assert_eq!(missing["params"]["agent"]["alive"], false);
    assert!(after <= heartbeat * 3 + Duration::from_millis(250), "agent_missing {after:?} after the kill");
    assert!(after >= heartbeat * 5 / 2 - Duration::from_millis(100), "agent_missing too early: {after:?}");
    drop(first);

    let _second = agent(dir.path(), &conductor_addr);
    let back = watch.json_line(DEADLINE);
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
    let conductor = serve("conductor", &["conductor", "--listen", &addr]);
    let watch = watch(&["--connect", &addr, "conductor.agent_missing", "conductor.agent_back"]);
    conductor.signal("TERM");
    let (code, stderr) = watch.exit();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&format!("the connection to {addr} was lost")), "{stderr}");
}

#[test]
fn watch_refuses_what_the_server_does_not_serve() {
    let dir = tempfile::tempdir().unwrap();
    let conductor = unix(dir.path(), "conductor.sock");
    let _conductor = serve("conductor", &["conductor", "--listen", &conductor]);
    // An event of the schema, but another service's.
    let (code, stderr) = vproto("watch", &["watch", "--connect", &conductor, "agent.driver_missing"]).exit();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("rpc.subscribe failed: error -32602") && stderr.contains("agent.driver_missing"),
        "{stderr}"
    );

    let driver = unix(dir.path(), "driver.sock");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/driver.json");
    let _driver = serve("driver", &["driver", "--listen", &driver, "--config", config]);
    let (code, stderr) = vproto("watch", &["watch", "--connect", &driver]).exit();
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
        let (code, stderr) = vproto("watch", &all).exit();
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let (code, stderr) = vproto("watch", &["watch", "--connect", "smoke:signals"]).exit();
    assert_eq!(code, Some(2), "{stderr}");
    let (code, stderr) = vproto("watch", &["watch", "--connect", nowhere]).exit();
    assert_eq!(code, Some(1), "an unreachable server is not a usage error: {stderr}");
    assert!(stderr.contains(nowhere), "{stderr}");
}
