//! The guest agent against the real kernel and real peers: `vproto xenstored` and `vproto agent`
//! run inside a network namespace of their own with veth pairs; links, carriers, addresses and
//! interfaces change with `ip`, and Debian's xenstore-utils (`xenstore-ls`, `xenstore-read`)
//! check that the data tree follows; `vproto guest-info --watch` follows it from dom0's side.
//! Needs root and iproute2; skips with a message otherwise.

mod guest_agent_support;
mod lines_support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use guest_agent_support::{start_xenstored, Netns, Process, DEADLINE, VPROTO};
use lines_support::Lines;
use serde_json::Value;

const MAC_A: &str = "02:00:00:00:00:a0";
const MAC_B: &str = "02:00:00:00:00:b0";
const MAC_C: &str = "02:00:00:00:00:c0";
const MAC_D: &str = "02:00:00:00:00:d0";

/// xenstored and the agent in one namespace. Field order is drop order: processes first, then
/// the namespace, then the directory.
struct Fixture {
    agent: Option<Process>,
    xenstored: Process,
    netns: Netns,
    dir: tempfile::TempDir,
    socket: PathBuf,
    home: String,
}

impl Fixture {
    fn start(home: &str) -> Fixture {
        let netns = Netns::create();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("xenstored.sock");
        let xenstored = start_xenstored(&netns, &socket, dir.path().join("xenstored-1.log"));
        // Two veth pairs' worth of names are used by the tests; one pair exists from the start.
        netns.ip(&["link", "add", "va0", "address", MAC_A, "type", "veth", "peer", "name", "vb0", "address", MAC_B]);
        Fixture { agent: None, xenstored, netns, dir, socket, home: home.to_string() }
    }

    fn start_agent(&mut self, layout: &str) {
        let mut command = self.netns.command(VPROTO);
        command.arg("agent").arg("--xenstore").arg(format!("unix:{}", self.socket.display())).args([
            "--layout",
            layout,
            "--domain-path",
            &self.home,
            "--log",
            "debug",
        ]);
        self.agent = Some(Process::spawn(command, self.dir.path().join("agent.log")));
    }

    fn xenstore(&self, tool: &str) -> Command {
        let mut command = Command::new(tool);
        command.env("XENSTORED_PATH", &self.socket);
        command
    }

    /// `xenstore-ls -f PATH` as path → value (values as xenstore-ls shows them); empty when
    /// the path does not exist or the store is unreachable.
    fn ls(&self, path: &str) -> BTreeMap<String, String> {
        let Ok(output) = self.xenstore("xenstore-ls").args(["-f", path]).output() else { return BTreeMap::new() };
        if !output.status.success() {
            return BTreeMap::new();
        }
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| {
                let (key, value) = line.split_once(" = ")?;
                Some((key.to_string(), value.trim_matches('"').to_string()))
            })
            .collect()
    }

    /// `xenstore-read -R PATH`: the raw value, or `None` when it does not exist.
    fn read(&self, path: &str) -> Option<String> {
        let output = self.xenstore("xenstore-read").args(["-R", &self.full(path)]).output().ok()?;
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn full(&self, relative: &str) -> String {
        format!("{}/{relative}", self.home)
    }

    /// Polls `check` until it passes or the deadline expires; then fails showing the tree and
    /// the logs.
    fn wait_for(&self, what: &str, check: impl Fn(&Fixture) -> Result<(), String>) {
        let start = Instant::now();
        loop {
            let outcome = check(self);
            match outcome {
                Ok(()) => return,
                Err(why) if start.elapsed() > DEADLINE => {
                    let tree: Vec<String> =
                        self.ls(&self.home).into_iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    panic!(
                        "{what}: not reached within {DEADLINE:?}: {why}\n--- tree\n{}\n--- agent log\n{}\n--- xenstored log\n{}",
                        tree.join("\n"),
                        self.agent.as_ref().map(Process::log).unwrap_or_default(),
                        self.xenstored.log()
                    );
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

fn mangle(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
}

/// The v1 path of a NIC field.
fn nic(mac: &str, field: &str) -> String {
    format!("data/vproto/nics/{}/{field}", mangle(mac))
}

/// The v1 path of an address field.
fn addr(mac: &str, address: &str, field: &str) -> String {
    nic(mac, &format!("addresses/{}/{field}", mangle(address)))
}

fn expect(fixture: &Fixture, path: &str, value: Option<&str>) -> Result<(), String> {
    let actual = fixture.read(path);
    if actual.as_deref() == value {
        Ok(())
    } else {
        Err(format!("{path}: expected {value:?}, found {actual:?}"))
    }
}

fn expect_all(fixture: &Fixture, expected: &[(&str, Option<&str>)]) -> Result<(), String> {
    expected.iter().try_for_each(|(path, value)| expect(fixture, path, *value))
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().trim().to_string()
}

#[test]
fn agent_tracks_links_carrier_addresses_interfaces_and_names() {
    skip_unless_able!();
    let mut fixture = Fixture::start("/local/domain/1");
    let before: Vec<String> = fixture.ls("/").into_keys().collect();
    fixture.start_agent("v1");

    let kernel = kernel_release();
    let (nic_a, nic_b) = (nic(MAC_A, "link/admin_up"), nic(MAC_B, "link/admin_up"));
    fixture.wait_for("initial publication", |f| {
        expect_all(
            f,
            &[
                ("data/vproto/protocol/name", Some("vproto-guest-data")),
                ("data/vproto/protocol/layout_version", Some("1.1.0")),
                ("data/vproto/os/unix/kernel_version", Some(&kernel)),
                (&nic(MAC_A, "name"), Some("va0")),
                (&nic(MAC_A, "mac"), Some(MAC_A)),
                (&nic_a, Some("0")),
                (&nic(MAC_B, "name"), Some("vb0")),
                (&nic_b, Some("0")),
            ],
        )?;
        f.read("data/vproto/os/name").filter(|name| !name.is_empty()).map(drop).ok_or("no os/name".into())
    });
    assert!(fixture.read("data/vproto/nics/00-00-00-00-00-00/name").is_none(), "loopback is not a NIC");

    // Administrative state and carrier: a veth has carrier only while both ends are up.
    fixture.netns.ip(&["link", "set", "va0", "up"]);
    fixture.wait_for("va0 up without carrier", |f| {
        expect_all(f, &[(&nic_a, Some("1")), (&nic(MAC_A, "link/carrier"), Some("0"))])
    });
    fixture.netns.ip(&["link", "set", "vb0", "up"]);
    fixture.wait_for("both ends up with carrier", |f| {
        expect_all(
            f,
            &[(&nic_b, Some("1")), (&nic(MAC_A, "link/carrier"), Some("1")), (&nic(MAC_B, "link/carrier"), Some("1"))],
        )
    });
    fixture.netns.ip(&["link", "set", "vb0", "down"]);
    fixture.wait_for("peer down: va0 loses carrier", |f| {
        expect_all(f, &[(&nic_a, Some("1")), (&nic(MAC_A, "link/carrier"), Some("0")), (&nic_b, Some("0"))])
    });
    fixture.netns.ip(&["link", "set", "vb0", "up"]);

    // Addresses, IPv4 and IPv6, added and removed.
    fixture.netns.ip(&["addr", "add", "192.0.2.10/24", "dev", "va0"]);
    fixture.netns.ip(&["addr", "add", "2001:db8::10/64", "dev", "va0", "nodad"]);
    fixture.wait_for("addresses added", |f| {
        expect_all(
            f,
            &[
                (&addr(MAC_A, "192.0.2.10", "address"), Some("192.0.2.10")),
                (&addr(MAC_A, "192.0.2.10", "prefix_length"), Some("24")),
                (&addr(MAC_A, "2001:db8::10", "address"), Some("2001:db8::10")),
                (&addr(MAC_A, "2001:db8::10", "prefix_length"), Some("64")),
            ],
        )
    });
    fixture.netns.ip(&["addr", "del", "192.0.2.10/24", "dev", "va0"]);
    fixture.wait_for("IPv4 address removed, IPv6 kept", |f| {
        expect_all(
            f,
            &[
                (&addr(MAC_A, "192.0.2.10", "address"), None),
                (&addr(MAC_A, "2001:db8::10", "address"), Some("2001:db8::10")),
            ],
        )?;
        let stale = nic(MAC_A, &format!("addresses/{}", mangle("192.0.2.10")));
        match f.read(&stale) {
            None => Ok(()),
            Some(_) => Err(format!("{stale} left behind")),
        }
    });
    fixture.netns.ip(&["addr", "del", "2001:db8::10/64", "dev", "va0"]);
    fixture.wait_for("IPv6 address removed", |f| expect(f, &addr(MAC_A, "2001:db8::10", "address"), None));

    // Interfaces added and removed.
    fixture
        .netns
        .ip(&["link", "add", "vc0", "address", MAC_C, "type", "veth", "peer", "name", "vd0", "address", MAC_D]);
    fixture.wait_for("interfaces added", |f| {
        expect_all(f, &[(&nic(MAC_C, "name"), Some("vc0")), (&nic(MAC_D, "name"), Some("vd0"))])
    });
    fixture.netns.ip(&["link", "del", "vc0"]);
    fixture.wait_for("interfaces removed, with their subtrees", |f| {
        let left: Vec<String> = f
            .ls(&f.full("data/vproto/nics"))
            .into_keys()
            .filter(|path| path.contains(&mangle(MAC_C)) || path.contains(&mangle(MAC_D)))
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("left behind: {left:?}"))
        }
    });

    // A hostile name is data, never a path.
    // The kernel refuses '/', ':', whitespace and '%' (a name template) in names; the rest goes.
    let hostile = "..$(x)*\"\\'é".to_string();
    fixture.netns.ip(&["link", "set", "va0", "down"]);
    fixture.netns.ip(&["link", "set", "va0", "name", &hostile]);
    fixture.wait_for("renamed link", |f| expect(f, &nic(MAC_A, "name"), Some(&hostile)));
    let after: Vec<String> = fixture.ls("/").into_keys().collect();
    let root = fixture.full("data/vproto");
    let outside: Vec<&String> = after
        .iter()
        .filter(|path| !before.contains(path))
        .filter(|path| !(path.as_str() == root || path.starts_with(&format!("{root}/"))))
        .filter(|path| !root.starts_with(&format!("{path}/")))
        .collect();
    assert!(outside.is_empty(), "the agent wrote outside its tree: {outside:?}");
}

#[test]
fn agent_republishes_after_xenstored_restarts() {
    skip_unless_able!();
    let mut fixture = Fixture::start("/local/domain/3");
    fixture.start_agent("v1");
    fixture.wait_for("initial publication", |f| expect(f, &nic(MAC_A, "name"), Some("va0")));

    fixture.xenstored.kill();
    // Changes while Xenstore is gone are published once it is back.
    fixture.netns.ip(&["link", "set", "va0", "up"]);
    fixture.netns.ip(&["addr", "add", "198.51.100.7/32", "dev", "va0"]);
    fixture.xenstored = start_xenstored(&fixture.netns, &fixture.socket, fixture.dir.path().join("xenstored-2.log"));
    fixture.wait_for("republished into the new, empty store", |f| {
        expect_all(
            f,
            &[
                ("data/vproto/protocol/layout_version", Some("1.1.0")),
                (&nic(MAC_A, "link/admin_up"), Some("1")),
                (&addr(MAC_A, "198.51.100.7", "prefix_length"), Some("32")),
                (&nic(MAC_B, "name"), Some("vb0")),
            ],
        )
    });
    // And it keeps following the kernel on the new connection.
    fixture.netns.ip(&["addr", "del", "198.51.100.7/32", "dev", "va0"]);
    fixture.wait_for("change after reconnecting", |f| expect(f, &addr(MAC_A, "198.51.100.7", "address"), None));
}

#[test]
fn legacy_layout_numbers_vifs_by_name() {
    skip_unless_able!();
    let mut fixture = Fixture::start("/local/domain/2");
    fixture.netns.ip(&["link", "set", "va0", "name", "eth0"]);
    fixture.netns.ip(&["link", "set", "vb0", "name", "eth1"]);
    fixture.netns.ip(&["link", "set", "eth0", "up"]);
    fixture.netns.ip(&["link", "set", "eth1", "up"]);
    fixture.netns.ip(&["addr", "add", "203.0.113.5/24", "dev", "eth0"]);
    fixture.start_agent("legacy");
    let kernel = kernel_release();
    fixture.wait_for("legacy publication", |f| {
        expect_all(f, &[("data/os_uname", Some(&kernel)), ("attr/vif/0/ipv4/0", Some("203.0.113.5"))])?;
        f.read("data/os_name").map(drop).ok_or("no data/os_name".into())
    });
    assert!(fixture.read("data/vproto").is_none(), "the legacy layout writes no v1 tree");
    fixture.netns.ip(&["addr", "del", "203.0.113.5/24", "dev", "eth0"]);
    fixture.wait_for("legacy address removed", |f| expect(f, "attr/vif/0/ipv4/0", None));
}

/// The NIC of `tree` (a GuestInfo line of `vproto guest-info --watch`) whose MAC is `mac`.
fn nic_of<'a>(tree: &'a Value, mac: &str) -> &'a Value {
    let nics = tree["nics"].as_array().unwrap_or_else(|| panic!("no nics in {tree}"));
    nics.iter().find(|nic| nic["mac"] == mac).unwrap_or_else(|| panic!("no NIC {mac} in {tree}"))
}

/// `vproto guest-info --watch` on the fixture's guest, from dom0's side of the same store.
fn guest_info_watch(fixture: &Fixture, domain: &str) -> Lines {
    let mut command = Command::new(VPROTO);
    let xenstore = format!("unix:{}", fixture.socket.display());
    command.args(["guest-info", "--watch", "--xenstore", &xenstore, "--domain", domain]);
    Lines::spawn("vproto guest-info --watch", command)
}

#[test]
fn guest_info_watch_prints_a_line_within_100_ms_of_a_link_going_down() {
    skip_unless_able!();
    let mut fixture = Fixture::start("/local/domain/4");
    fixture.netns.ip(&["link", "set", "va0", "up"]);
    fixture.netns.ip(&["link", "set", "vb0", "up"]);
    fixture.start_agent("v1");
    fixture.wait_for("both ends up with carrier", |f| {
        expect_all(f, &[(&nic(MAC_A, "link/carrier"), Some("1")), (&nic(MAC_B, "link/carrier"), Some("1"))])
    });

    let mut watch = guest_info_watch(&fixture, "4");
    let first = watch.json_line(DEADLINE);
    assert_eq!(nic_of(&first, MAC_A)["link"]["admin_up"], true, "{first}");
    assert_eq!(first["os"]["kernel_version"].as_str(), Some(kernel_release().as_str()), "{first}");

    // The agent publishes the change in one transaction; the watch reads it after 20 ms of
    // quiet. Lines for other changes (the kernel's link-local addresses) may come first.
    let started = Instant::now();
    fixture.netns.ip(&["link", "set", "va0", "down"]);
    let down = loop {
        let line = watch.json_line(DEADLINE);
        if nic_of(&line, MAC_A)["link"]["admin_up"] == false {
            break line;
        }
    };
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(100), "the line came {elapsed:?} after `ip link set va0 down`");
    assert_eq!(nic_of(&down, MAC_A)["link"]["carrier"], false, "{down}");
    assert_eq!(nic_of(&down, MAC_B)["link"]["carrier"], false, "the peer loses carrier too: {down}");

    // A signal ends a watch with success.
    let mut other = guest_info_watch(&fixture, "4");
    other.json_line(DEADLINE);
    other.signal("INT");
    let (code, stderr) = other.exit();
    assert_eq!(code, Some(0), "{stderr}");

    // A tree that becomes invalid ends it, naming the path and why.
    let version = fixture.full("data/vproto/protocol/layout_version");
    let written = fixture.xenstore("xenstore-write").args([&version, "9.0.0"]).status().unwrap();
    assert!(written.success());
    let (code, stderr) = watch.exit();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&version) && stderr.contains("9.0.0"), "{stderr}");
}
