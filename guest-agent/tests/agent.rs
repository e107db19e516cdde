//! The `vproto-guest-agent` binary, run as a guest runs it, against the embedded xenstored
//! (`vproto_xenstore::server`, in this test's process):
//!
//! - as a guest on its own socket (paths relative to its home, as on xenbus), it publishes
//!   exactly the tree `vproto_services::guest_agent` computes for this machine, and stops
//!   cleanly on SIGTERM;
//! - inside a network namespace of its own (root and iproute2; skips otherwise, or fails under
//!   `CI`), it follows links being added, brought up and removed.
//!
//! The binary is the one cargo builds for the tests, or the one `VPROTO_GUEST_AGENT_BIN` names:
//! `cargo xtask test` runs these tests a second time against the shipped build
//! (`cargo build --profile guest-agent -p vproto-guest-agent`).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{agent_binary, leaves, terminate, wait_for};

use vproto_netlink::NetlinkCollector;
use vproto_services::guest_agent::{collect_os_info, guest_info, OsSources};
use vproto_services::guest_tree::GuestLayout;
use vproto_test_support::Process;
use vproto_xenstore::server::{self, DomainSocket, Quotas, RunningXenstored, XenstoredConfig};
use vproto_xenstore::{Xenstore, XenstoreAddr};

/// How often a condition is checked.
const POLL: Duration = Duration::from_millis(20);

async fn xenstored(dir: &Path, guest: Option<u32>) -> RunningXenstored {
    let config = XenstoredConfig {
        socket: dir.join("xenstored.sock"),
        domains: guest
            .map(|domid| DomainSocket { domid, path: dir.join(format!("dom{domid}.sock")) })
            .into_iter()
            .collect(),
        quotas: Quotas::default(),
    };
    server::serve(config).await.expect("the embedded xenstored starts")
}

#[tokio::test]
async fn publishes_this_machines_tree_as_a_guest_and_stops_on_sigterm() {
    const DOMID: u32 = 4;
    let home = format!("/local/domain/{DOMID}");
    let dir = tempfile::tempdir().unwrap();
    let store = xenstored(dir.path(), Some(DOMID)).await;
    let guest_socket = dir.path().join(format!("dom{DOMID}.sock"));

    let mut command = Command::new(agent_binary());
    command.arg("--xenstore").arg(format!("unix:{}", guest_socket.display())).args(["--log", "debug"]);
    let mut agent = Process::spawn(command, dir.path().join("agent.log"));

    let dom0 = Xenstore::connect(&XenstoreAddr::Unix(store.socket().to_path_buf())).await.unwrap();
    let os = collect_os_info(&OsSources::default());
    let collector = NetlinkCollector::open().await.expect("netlink");
    let root = format!("{home}/data/vproto");
    wait_for("the tree the services crate computes, under the guest's home", &agent, POLL, || {
        let (dom0, root, home) = (&dom0, &root, &home);
        // This machine's links, read again on every try in case one changed meanwhile.
        let nics = collector.nics();
        let want = GuestLayout::V1.encode(&guest_info(GuestLayout::V1, &os, &nics));
        async move {
            let have = leaves(dom0, home, root).await;
            if have == want {
                Ok(())
            } else {
                Err(format!("published {have:#?}\nexpected {want:#?}"))
            }
        }
    })
    .await;
    let name = String::from_utf8(dom0.read(&format!("{root}/protocol/name")).await.unwrap()).unwrap();
    assert_eq!(name, "vproto-guest-data");

    let status = terminate(&mut agent).await;
    assert!(status.success(), "exit on SIGTERM: {status}\n{}", agent.log());
    assert!(agent.log().contains("shutting down"), "{}", agent.log());
    store.shutdown().await;
}

#[test]
fn refuses_bad_arguments_and_explains_itself() {
    let run = |args: &[&str]| Command::new(agent_binary()).args(args).output().unwrap();
    let help = run(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--xenstore ADDR"));
    let bad = run(&["--layout", "v9"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--layout"), "{}", String::from_utf8_lossy(&bad.stderr));
}

/// A network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn ip(&self, args: &[&str]) {
        let output = Command::new("ip").arg("-n").arg(&self.0).args(args).output().unwrap();
        assert!(output.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[tokio::test]
async fn follows_links_in_a_network_namespace() {
    if !vproto_test_support::is_root() {
        return vproto_test_support::missing_peer("needs root (network namespaces); run as root to include it");
    }
    if vproto_test_support::first_missing(&["ip"]).is_some() {
        return vproto_test_support::missing_peer("`ip` is missing (apt-get install iproute2)");
    }
    const HOME: &str = "/local/domain/6";
    const MAC: &str = "02:00:00:00:00:e0";
    let netns = Netns(format!("vproto-lean-{}", std::process::id()));
    assert!(Command::new("ip").args(["netns", "add", &netns.0]).status().unwrap().success());
    netns.ip(&["link", "add", "ve0", "address", MAC, "type", "veth", "peer", "name", "vf0"]);

    let dir = tempfile::tempdir().unwrap();
    let store = xenstored(dir.path(), None).await;
    // A Unix socket is reached by its path from any network namespace.
    let mut command = Command::new("ip");
    command.args(["netns", "exec", &netns.0]).arg(agent_binary());
    command.arg("--xenstore").arg(format!("unix:{}", store.socket().display()));
    command.args(["--domain-path", HOME, "--log", "debug"]);
    let mut agent = Process::spawn(command, dir.path().join("agent.log"));

    let xs = Xenstore::connect(&XenstoreAddr::Unix(store.socket().to_path_buf())).await.unwrap();
    let nic = |field: &str| format!("{HOME}/data/vproto/nics/02-00-00-00-00-e0/{field}");
    let expect = |path: String, want: Option<&'static str>| {
        let xs = &xs;
        async move {
            let have = xs.read(&path).await.ok().map(|value| String::from_utf8_lossy(&value).into_owned());
            if have.as_deref() == want {
                Ok(())
            } else {
                Err(format!("{path}: expected {want:?}, found {have:?}"))
            }
        }
    };
    wait_for("ve0 published, down", &agent, POLL, || async {
        expect(nic("name"), Some("ve0")).await?;
        expect(nic("link/admin_up"), Some("0")).await
    })
    .await;
    netns.ip(&["link", "set", "ve0", "up"]);
    wait_for("ve0 up", &agent, POLL, || expect(nic("link/admin_up"), Some("1"))).await;
    netns.ip(&["addr", "add", "192.0.2.20/24", "dev", "ve0"]);
    wait_for("address added", &agent, POLL, || expect(nic("addresses/192-0-2-20/prefix_length"), Some("24"))).await;
    netns.ip(&["link", "del", "ve0"]);
    wait_for("ve0 removed with its subtree", &agent, POLL, || expect(nic("name"), None)).await;

    let status = terminate(&mut agent).await;
    assert!(status.success(), "exit on SIGTERM: {status}\n{}", agent.log());
    store.shutdown().await;
}
