//! The guest channel (`guest.*`) against the real kernel: `vproto serve guest` and `vproto agent
//! --guest-channel` run inside a network namespace of their own with a veth pair; datagrams sent
//! across the pair must move the counters `guest.nic_counters` answers, `vproto conform` must
//! pass against the channel, and the agent's `guest.info` must be the GuestInfo its Xenstore
//! tree holds (read back with `vproto guest-info`), and stay live while Xenstore is gone.
//! Those need root, iproute2 and xenstore-utils (as the guest agent's tests); they skip with a
//! message otherwise. Last, `vproto agent --vchan` as guest 7 serves the channel to dom0 over
//! vchan on the simulation backend (docs/vchan.md), which needs nothing of the sort.

mod guest_agent_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use guest_agent_support::{run, start_xenstored, Netns, Process, DEADLINE, VPROTO};
use serde_json::{json, Value};

const MAC_TX: &str = "02:00:00:00:03:01";
const MAC_RX: &str = "02:00:00:00:03:11";
/// Datagrams sent across the pair, and the payload of each.
const SENT: u64 = 20;
const SIZE: u64 = 1000;

/// A veth pair tx0/rx0, both up. Datagrams to 198.51.100.2 leave through tx0 (its connected
/// route) to a neighbour fixed at rx0's MAC, so they cross the pair without ARP; rx0 has no
/// address, so the kernel does not take the destination for a local one.
fn veth_pair(netns: &Netns) {
    netns.ip(&["link", "add", "tx0", "address", MAC_TX, "type", "veth", "peer", "name", "rx0", "address", MAC_RX]);
    netns.ip(&["link", "set", "tx0", "up"]);
    netns.ip(&["link", "set", "rx0", "up"]);
    netns.ip(&["addr", "add", "198.51.100.1/24", "dev", "tx0"]);
    netns.ip(&["neigh", "add", "198.51.100.2", "lladdr", MAC_RX, "dev", "tx0", "nud", "permanent"]);
}

/// Sends [`SENT`] UDP datagrams of [`SIZE`] bytes from tx0 to rx0 (bash's `/dev/udp`).
fn send_datagrams(netns: &Netns) {
    let script = format!("for i in $(seq {SENT}); do printf '%{SIZE}s' x > /dev/udp/198.51.100.2/9; done");
    run(netns.command("bash").args(["-c", &script]));
}

/// Waits until something accepts on the Unix socket `path`.
fn wait_for_socket(path: &Path, process: &Process) {
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(path).is_err() {
        assert!(start.elapsed() < DEADLINE, "nothing listens on {}: {}", path.display(), process.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `vproto call --connect unix:SOCKET METHOD PARAMS`: the result, or the error output.
fn call(socket: &Path, method: &str, params: Value) -> Result<Value, String> {
    call_at(Command::new(VPROTO), &format!("unix:{}", socket.display()), method, params)
}

/// `command call --connect ADDR METHOD PARAMS` (`command` being `vproto`, with its
/// environment): the result, or the error output.
fn call_at(mut command: Command, addr: &str, method: &str, params: Value) -> Result<Value, String> {
    let output =
        command.args(["call", "--connect", addr, method, &params.to_string()]).output().expect("vproto call runs");
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).expect("the result is JSON"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Polls `check` until it gives a value, failing at the deadline with `what` and the log.
fn poll<T>(what: &str, process: &Process, mut check: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(value) => return value,
            Err(why) if start.elapsed() > DEADLINE => panic!("{what}: {why}\n--- log\n{}", process.log()),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The GuestInfo of domain `domain`'s tree, as `vproto guest-info` reads it from the Xenstore
/// socket `xenstore`, its NICs in [`by_mac`] order.
fn tree(xenstore: &Path, domain: u32) -> Result<Value, String> {
    let output = Command::new(VPROTO)
        .args(["guest-info", "--xenstore", &format!("unix:{}", xenstore.display()), "--domain", &domain.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    let info =
        serde_json::from_slice(&output.stdout).map_err(|_| String::from_utf8_lossy(&output.stderr).into_owned())?;
    Ok(by_mac(info))
}

/// `info` with its NICs sorted by MAC: the tree keeps NICs by MAC, so it gives them back in
/// that order, where GuestInfo (and so the channel) orders them by name.
fn by_mac(mut info: Value) -> Value {
    if let Some(nics) = info["nics"].as_array_mut() {
        nics.sort_by_key(|nic| nic["mac"].as_str().map(str::to_string));
    }
    info
}

/// The packets and bytes of one direction of the NIC a `guest.nic_counters` answer holds.
fn moved(answer: &Value, direction: &str) -> (u64, u64) {
    let counters = &answer["nics"][0][direction];
    (counters["packets"].as_u64().unwrap(), counters["bytes"].as_u64().unwrap())
}

#[test]
fn serve_guest_counts_the_traffic_of_each_nic_and_passes_conformance() {
    skip_unless_able!();
    let netns = Netns::create();
    veth_pair(&netns);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("guest.sock");
    let mut command = netns.command(VPROTO);
    command.args(["serve", "guest", "--listen", &format!("unix:{}", socket.display())]);
    let server = Process::spawn(command, dir.path().join("serve.log"));
    wait_for_socket(&socket, &server);

    let info = call(&socket, "guest.info", json!({})).unwrap();
    let nics: Vec<(&str, &str)> = info["nics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|nic| (nic["name"].as_str().unwrap(), nic["mac"].as_str().unwrap()))
        .collect();
    assert_eq!(nics, [("rx0", MAC_RX), ("tx0", MAC_TX)], "the pair, by name, and not lo");

    let tx_before = call(&socket, "guest.nic_counters", json!({"name": "tx0"})).unwrap();
    let rx_before = call(&socket, "guest.nic_counters", json!({"mac": MAC_RX})).unwrap();
    assert_eq!(tx_before["nics"].as_array().unwrap().len(), 1, "{tx_before}");
    assert_eq!(rx_before["nics"][0]["name"], "rx0", "{rx_before}");
    send_datagrams(&netns);
    // At least what was sent: IPv6 may add packets of its own (router solicitations, MLD).
    let at_least = |(packets, bytes): (u64, u64), (packets0, bytes0): (u64, u64)| {
        packets - packets0 >= SENT && bytes - bytes0 >= SENT * SIZE
    };
    let tx_after = poll("tx0's counters to move", &server, || {
        let answer = call(&socket, "guest.nic_counters", json!({"name": "tx0", "mac": MAC_TX}))?;
        let grown = at_least(moved(&answer, "tx"), moved(&tx_before, "tx"));
        if grown {
            Ok(answer)
        } else {
            Err(format!("{tx_before} then {answer}"))
        }
    });
    assert!(tx_after["read_at"].as_str().unwrap() > tx_before["read_at"].as_str().unwrap(), "{tx_after}");
    let rx_after = call(&socket, "guest.nic_counters", json!({"name": "rx0"})).unwrap();
    assert!(at_least(moved(&rx_after, "rx"), moved(&rx_before, "rx")), "{rx_before} then {rx_after}");

    let unknown = call(&socket, "guest.nic_counters", json!({"name": "tx0", "mac": MAC_RX})).unwrap_err();
    assert!(unknown.contains("1200") && unknown.contains("UnknownNic"), "{unknown}");

    let conform = Command::new(VPROTO)
        .args(["conform", "--target", &format!("unix:{}", socket.display())])
        .output()
        .expect("vproto conform runs");
    let report = String::from_utf8_lossy(&conform.stdout);
    assert!(conform.status.success(), "{report}\n{}", String::from_utf8_lossy(&conform.stderr));
    assert!(report.contains("2 of 2 methods covered"), "{report}");
}

#[test]
fn the_agents_guest_channel_answers_what_its_tree_holds_and_outlives_xenstore() {
    skip_unless_able!();
    let netns = Netns::create();
    veth_pair(&netns);
    let dir = tempfile::tempdir().unwrap();
    let xenstore = dir.path().join("xenstored.sock");
    let mut xenstored = start_xenstored(&netns, &xenstore, dir.path().join("xenstored.log"));
    let channel = dir.path().join("channel.sock");
    let mut command = netns.command(VPROTO);
    command.arg("agent").arg("--xenstore").arg(format!("unix:{}", xenstore.display())).args([
        "--domain-path",
        "/local/domain/5",
        "--guest-channel",
        &format!("unix:{}", channel.display()),
    ]);
    let mut agent = Process::spawn(command, dir.path().join("agent.log"));
    wait_for_socket(&channel, &agent);

    let same = |what: &str| {
        poll(what, &agent, || {
            let (published, answered) = (tree(&xenstore, 5)?, by_mac(call(&channel, "guest.info", json!({}))?));
            if published == answered {
                Ok(answered)
            } else {
                Err(format!("tree {published}\nchannel {answered}"))
            }
        })
    };
    let info = same("the channel's GuestInfo to be the tree's");
    assert_eq!(info["nics"].as_array().unwrap().len(), 2, "{info}");

    netns.ip(&["link", "set", "tx0", "down"]);
    let info = same("both to show tx0 down");
    let admin_up = |info: &Value, name: &str| {
        info["nics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|nic| nic["name"] == name)
            .map(|nic| nic["link"]["admin_up"].clone())
    };
    assert_eq!(admin_up(&info, "tx0"), Some(json!(false)), "{info}");

    // Xenstore goes away: the agent retries it, and the channel still follows the NICs.
    xenstored.kill();
    netns.ip(&["link", "set", "rx0", "down"]);
    poll("the channel to show rx0 down without Xenstore", &agent, || {
        let info = call(&channel, "guest.info", json!({}))?;
        if admin_up(&info, "rx0") == Some(json!(false)) {
            Ok(())
        } else {
            Err(info.to_string())
        }
    });
    assert!(call(&channel, "guest.nic_counters", json!({"name": "rx0"})).is_ok());

    run(Command::new("kill").args(["-TERM", &agent.child.id().to_string()]));
    let start = Instant::now();
    let exited = loop {
        if let Some(status) = agent.child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < DEADLINE, "the agent did not exit: {}", agent.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exited.success(), "{exited:?}: {}", agent.log());
    assert!(!channel.exists(), "the channel's socket is removed");
}

/// `vproto` with the simulated vchan environment of domain `domid` (docs/vchan.md) and the
/// Xenstore socket it reaches the rendezvous through.
fn as_domain(domid: u32, sim: &Path, xenstore: &Path) -> Command {
    let mut command = Command::new(VPROTO);
    command
        .env("VPROTO_VCHAN_BACKEND", "sim")
        .env("VPROTO_SIM_DOMID", domid.to_string())
        .env("VPROTO_SIM_DIR", sim)
        .env("XENSTORED_PATH", xenstore);
    command
}

#[test]
fn the_agent_serves_the_guest_channel_to_dom0_over_vchan() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    std::fs::create_dir(&sim).unwrap();
    let (dom0, dom7) = (dir.path().join("xenstored.sock"), dir.path().join("dom7.sock"));
    let mut command = Command::new(VPROTO);
    command.arg("xenstored").arg("--socket").arg(&dom0).arg("--domain").arg(format!("7={}", dom7.display()));
    let xenstored = Process::spawn(command, dir.path().join("xenstored.log"));
    wait_for_socket(&dom7, &xenstored);

    // Guest 7 offers the channel at data/vproto-channel in its home, for dom0 only.
    let mut command = as_domain(7, &sim, &dom7);
    command
        .arg("agent")
        .arg("--xenstore")
        .arg(format!("unix:{}", dom7.display()))
        .args(["--vchan", "data/vproto-channel"]);
    let mut agent = Process::spawn(command, dir.path().join("agent.log"));
    let channel = "vchan:7:/local/domain/7/data/vproto-channel";
    let info = poll("the channel's GuestInfo to be the tree's", &agent, || {
        let answered = by_mac(call_at(as_domain(0, &sim, &dom0), channel, "guest.info", json!({"version": "1.0"}))?);
        let published = tree(&dom0, 7)?;
        if published == answered {
            Ok(answered)
        } else {
            Err(format!("tree {published}\nchannel {answered}"))
        }
    });
    let counters = call_at(as_domain(0, &sim, &dom0), channel, "guest.nic_counters", json!({})).unwrap();
    assert_eq!(counters["nics"].as_array().unwrap().len(), info["nics"].as_array().unwrap().len(), "{counters}");

    let conform =
        as_domain(0, &sim, &dom0).args(["conform", "--target", channel]).output().expect("vproto conform runs");
    let report = String::from_utf8_lossy(&conform.stdout);
    assert!(conform.status.success(), "{report}\n{}\n{}", String::from_utf8_lossy(&conform.stderr), agent.log());
    assert!(report.contains("2 of 2 methods covered"), "{report}");

    run(Command::new("kill").args(["-TERM", &agent.child.id().to_string()]));
    let start = Instant::now();
    while agent.child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < DEADLINE, "the agent did not exit: {}", agent.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(agent.child.try_wait().unwrap().unwrap().success(), "{}", agent.log());
}
