//! `vproto guest-info` against real peers: `vproto xenstored`, with the guest's
//! tree written by Debian's `xenstore-write` over the guest's own socket (so
//! relative paths land under /local/domain/5, as in a real guest). `--watch` follows it.

mod lines_support;

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
};

use lines_support::{Lines, DEADLINE};
use serde_json::{json, Value};
use vproto_api::{GuestAddress, GuestInfo, GuestNic, GuestProtocol, IPAddress, LinkState, MACAddress, OsInfo};
use vproto_services::guest_tree::GuestLayout;

const DOMID: u32 = 5;

fn vproto() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vproto"))
}

/// The reason the foreign tools cannot run here, if any.
fn skip_reason() -> Option<String> {
    let missing: Vec<&str> = ["xenstore-write", "xenstore-rm"]
        .into_iter()
        .filter(|tool| !Path::new("/usr/bin").join(tool).exists())
        .collect();
    (!missing.is_empty()).then(|| format!("{} not installed (apt-get install xenstore-utils)", missing.join(", ")))
}

/// `vproto xenstored` with a dom0 socket and a socket for guest 5; killed on drop.
struct Xenstored {
    child: Child,
    _dir: tempfile::TempDir,
    dom0: PathBuf,
    guest: PathBuf,
}

impl Xenstored {
    fn start() -> Xenstored {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (dom0, guest) = (dir.path().join("xenstored.sock"), dir.path().join("dom5.sock"));
        let mut child = vproto()
            .arg("xenstored")
            .arg("--socket")
            .arg(&dom0)
            .arg("--domain")
            .arg(format!("{DOMID}={}", guest.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start vproto xenstored");
        // It prints `unix:PATH` once it listens.
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line).expect("read its first line");
        assert_eq!(line.trim(), format!("unix:{}", dom0.display()), "vproto xenstored did not start");
        Xenstored { child, _dir: dir, dom0, guest }
    }

    /// Writes `pairs` as the guest would, with xenstore-write on the guest's socket.
    fn guest_write(&self, pairs: &BTreeMap<String, String>) {
        self.xenstore_write(&self.guest, pairs);
    }

    /// Writes absolute `pairs` as dom0 (the toolstack) would.
    fn dom0_write(&self, pairs: &BTreeMap<String, String>) {
        self.xenstore_write(&self.dom0, pairs);
    }

    /// The toolstack's VIF 0 of the guest (fa:16:3e:11:22:33), in Xenbus `state` (4:
    /// connected, 6: closed).
    fn toolstack_vif(&self, state: &str) {
        let mut toolstack = BTreeMap::new();
        toolstack.insert(format!("/local/domain/{DOMID}/device/vif/0/mac"), "fa:16:3e:11:22:33".to_string());
        toolstack.insert(format!("/local/domain/{DOMID}/device/vif/0/state"), state.to_string());
        self.dom0_write(&toolstack);
    }

    fn xenstore_write(&self, socket: &Path, pairs: &BTreeMap<String, String>) {
        let mut command = Command::new("xenstore-write");
        command.env("XENSTORED_PATH", socket);
        for (path, value) in pairs {
            command.arg(path).arg(value);
        }
        let output = command.output().expect("run xenstore-write");
        assert!(output.status.success(), "xenstore-write failed: {}", String::from_utf8_lossy(&output.stderr));
    }

    fn guest_rm(&self, path: &str) {
        let output =
            Command::new("xenstore-rm").env("XENSTORED_PATH", &self.guest).arg(path).output().expect("run xenstore-rm");
        assert!(output.status.success(), "xenstore-rm failed: {}", String::from_utf8_lossy(&output.stderr));
    }

    fn guest_info(&self, layout: &str) -> Output {
        vproto()
            .args(["guest-info", "--xenstore", &format!("unix:{}", self.dom0.display())])
            .args(["--domain", &DOMID.to_string(), "--layout", layout])
            .output()
            .expect("run vproto guest-info")
    }
}

impl Drop for Xenstored {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn info() -> GuestInfo {
    let nic = |name: &str, mac: &str, address: &str, prefix_length: i64, up: bool| GuestNic {
        name: name.into(),
        mac: MACAddress::new(mac).unwrap(),
        addresses: vec![GuestAddress { address: IPAddress::new(address).unwrap(), prefix_length }],
        link: LinkState { admin_up: up, carrier: up },
    };
    GuestInfo {
        protocol: GuestProtocol { name: "vproto-guest-data".into(), layout_version: "1.1.0".into() },
        os: OsInfo {
            name: "Debian GNU/Linux".into(),
            version: Some("12".into()),
            kernel_version: Some("6.1.0-18-amd64".into()),
            distro: Some("debian".into()),
        },
        nics: vec![
            nic("eth0", "fa:16:3e:11:22:33", "192.0.2.10", 24, true),
            nic("../../evil name", "fa:16:3e:44:55:66", "2001:db8::1", 64, false),
        ],
    }
}

fn json_out(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "vproto guest-info failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("guest-info prints JSON")
}

fn refused(output: &Output, words: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "expected exit 2, got {}: {stderr}", output.status);
    assert!(stderr.contains(words), "expected {words:?} in: {stderr}");
    assert!(output.stdout.is_empty(), "nothing is printed on failure");
}

#[test]
fn reads_validates_and_refuses_the_v1_tree() {
    if let Some(reason) = skip_reason() {
        return vproto_test_support::missing_peer(&reason);
    }
    let xenstored = Xenstored::start();
    refused(&xenstored.guest_info("v1"), "/local/domain/5/data/vproto: no data tree");

    let tree = GuestLayout::V1.encode(&info());
    xenstored.guest_write(&tree);
    let printed = json_out(&xenstored.guest_info("v1"));
    assert_eq!(
        printed["os"],
        json!({"name": "Debian GNU/Linux", "version": "12", "kernel_version": "6.1.0-18-amd64", "distro": "debian"})
    );
    assert_eq!(printed["protocol"]["layout_version"], "1.1.0");
    let names: Vec<&str> = printed["nics"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["eth0", "../../evil name"]);
    assert_eq!(printed["nics"][1]["addresses"][0], json!({"address": "2001:db8::1", "prefix_length": 64}));

    // A newer minor is read; an unknown major is refused with a clear message.
    let mut newer = BTreeMap::new();
    newer.insert("data/vproto/protocol/layout_version".to_string(), "1.4.0".to_string());
    newer.insert("data/vproto/os/windows/build".to_string(), "22631".to_string());
    xenstored.guest_write(&newer);
    assert_eq!(json_out(&xenstored.guest_info("v1"))["protocol"]["layout_version"], "1.4.0");
    newer.insert("data/vproto/protocol/layout_version".to_string(), "2.0.0".to_string());
    xenstored.guest_write(&newer);
    refused(
        &xenstored.guest_info("v1"),
        "/local/domain/5/data/vproto/protocol/layout_version: layout 2.0.0 is newer than this reader, which reads 1.x",
    );

    // Values are validated against the schema, naming the full path.
    newer.insert("data/vproto/protocol/layout_version".to_string(), "1.1.0".to_string());
    newer.insert("data/vproto/nics/fa-16-3e-11-22-33/link/carrier".to_string(), "yes".to_string());
    xenstored.guest_write(&newer);
    refused(
        &xenstored.guest_info("v1"),
        "/local/domain/5/data/vproto/nics/fa-16-3e-11-22-33/link/carrier: \"yes\" is not a boolean",
    );
    newer.insert("data/vproto/nics/fa-16-3e-11-22-33/link/carrier".to_string(), "1".to_string());
    xenstored.guest_write(&newer);
    json_out(&xenstored.guest_info("v1"));
    xenstored.guest_rm("data/vproto/os/name");
    refused(&xenstored.guest_info("v1"), "/local/domain/5/data/vproto/os/name: missing");
}

#[test]
fn reads_the_legacy_tree_with_the_toolstack_nodes() {
    if let Some(reason) = skip_reason() {
        return vproto_test_support::missing_peer(&reason);
    }
    let xenstored = Xenstored::start();
    xenstored.guest_write(&GuestLayout::Legacy.encode(&info()));
    refused(&xenstored.guest_info("legacy"), "/local/domain/5/device/vif/0/mac: missing");
    xenstored.toolstack_vif("4");
    let printed = json_out(&xenstored.guest_info("legacy"));
    assert_eq!(printed["protocol"]["layout_version"], "0.0.0");
    assert_eq!(printed["os"]["version"], "12");
    assert_eq!(
        printed["nics"],
        json!([{"name": "vif0", "mac": "fa:16:3e:11:22:33", "link": {"admin_up": true, "carrier": true},
                "addresses": [{"address": "192.0.2.10", "prefix_length": 32}]}])
    );
    // The v1 reader finds no v1 tree here and says where to look.
    refused(&xenstored.guest_info("v1"), "try --layout legacy");
}

#[test]
fn watch_prints_the_tree_then_each_change_once_until_it_becomes_invalid() {
    if let Some(reason) = skip_reason() {
        return vproto_test_support::missing_peer(&reason);
    }
    let xenstored = Xenstored::start();
    xenstored.guest_write(&GuestLayout::Legacy.encode(&info()));
    xenstored.toolstack_vif("4");
    let mut command = vproto();
    command.args(["guest-info", "--watch", "--xenstore", &format!("unix:{}", xenstored.dom0.display())]);
    command.args(["--domain", &DOMID.to_string(), "--layout", "legacy"]);
    let mut watch = Lines::spawn("vproto guest-info --watch", command);
    let first = watch.json_line(DEADLINE);
    assert_eq!(first["nics"][0]["link"], json!({"admin_up": true, "carrier": true}));

    // The legacy layout reads the toolstack's nodes too: they are watched as well.
    xenstored.toolstack_vif("6");
    let closed = watch.json_line(DEADLINE);
    assert_eq!(closed["nics"][0]["link"], json!({"admin_up": false, "carrier": false}), "{closed}");

    // Nodes written one by one (xenstore-write sends one request each) make one line, and a
    // write that changes nothing makes none.
    let mut os = BTreeMap::new();
    for (key, value) in [("data/os_name", "Debian GNU/Linux 13"), ("data/os_majorver", "13"), ("data/os_minorver", "1")]
    {
        os.insert(key.to_string(), value.to_string());
    }
    xenstored.guest_write(&os);
    xenstored.guest_write(&os);
    let upgraded = watch.json_line(DEADLINE);
    assert_eq!(upgraded["os"]["version"], "13.1", "{upgraded}");
    assert!(watch.stdout.recv_timeout(std::time::Duration::from_millis(300)).is_err(), "one line for the burst");

    xenstored.guest_rm("data/os_name");
    let (code, stderr) = watch.exit();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("/local/domain/5/data/os_name: missing"), "{stderr}");
}

#[test]
fn bad_arguments_and_unreachable_xenstore_exit_2() {
    let output =
        vproto().args(["guest-info", "--xenstore", "unix:/nonexistent/xs.sock", "--domain", "5"]).output().unwrap();
    refused(&output, "cannot connect to Xenstore at unix:/nonexistent/xs.sock");
    let output = vproto()
        .args(["guest-info", "--xenstore", "unix:/nonexistent/xs.sock", "--domain", "5", "--layout", "v2"])
        .output()
        .unwrap();
    refused(&output, "--layout: unknown layout `v2`");
    let output = vproto().args(["guest-info", "--xenstore", "tcp:1.2.3.4", "--domain", "5"]).output().unwrap();
    refused(&output, "--xenstore");
}
