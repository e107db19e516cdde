//! The Cyborg services as three `vproto serve ... --bus` processes talking only through a
//! private RabbitMQ broker (no address given but the broker's, none listening elsewhere):
//! `vproto call` lists the driver's hardware at the conductor through the broker, and
//! `vproto conform` passes against the driver through it; the broker
//! is killed (SIGKILL) and started again, and the three recover by themselves.

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use vproto_test_support::{missing_peer, rabbitmq::Broker, Process};

const VPROTO: &str = env!("CARGO_BIN_EXE_vproto");
const CRYPTO: &str = "8e45a2ea-5364-4b0d-a252-bf8becaa606e";

/// A `vproto serve` process, killed when dropped.
struct Service {
    process: Process,
    name: &'static str,
}

impl Service {
    /// Starts `vproto serve ARGS` and waits for the address it prints once serving.
    fn start(dir: &Path, name: &'static str, args: &[&str]) -> (Service, String) {
        let mut command = Command::new(VPROTO);
        command
            .arg("serve")
            .args(args)
            .env("VPROTO_LOG", "info")
            // The conductor's default state lives here, not in the home directory.
            .env("STATE_DIRECTORY", dir);
        let (process, addr) = Process::serving(command, dir.join(format!("{name}.log")), Duration::from_secs(60));
        (Service { process, name }, addr)
    }

    fn log(&self) -> String {
        format!("--- {} ---\n{}", self.name, self.process.log())
    }

    /// Panics if it has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.process.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.name, self.log());
        }
    }
}

fn call(args: &[&str]) -> Output {
    Command::new(VPROTO).arg("call").args(args).stdin(Stdio::null()).output().expect("vproto call runs")
}

/// `vproto call`'s result, when it succeeded.
fn result(output: &Output) -> Option<Value> {
    output.status.success().then(|| serde_json::from_slice(&output.stdout).ok()).flatten()
}

/// Polls `check` until it gives a value; fails after `seconds` with `what` and the logs.
fn poll<T>(what: &str, seconds: u64, services: &mut [&mut Service], mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check() {
            return value;
        }
        services.iter_mut().for_each(|service| service.assert_running());
        if Instant::now() > deadline {
            let logs: Vec<String> = services.iter().map(|service| service.log()).collect();
            panic!("timed out waiting for {what}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn driver_config(dir: &Path) -> String {
    let path = dir.join("driver.json");
    let config = json!({
        "device_type": "CRYPTO",
        "discovery": {"duration_ms": 100},
        "hardware": [{
            "uuid": CRYPTO,
            "acc_specs": {"remote": false, "num": 1, "device_type": "CRYPTO",
                          "acc_capability": {"num": 1, "features": {"ipsec": {"features": {"aes": {"num": 1}}}}}},
            "acc_status": {"setup_required": false, "reboot_required": false}
        }]
    });
    std::fs::write(&path, config.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn three_services_on_the_bus_list_hardware_and_survive_a_broker_restart() {
    if let Some(why) = Broker::skip_reason() {
        return missing_peer(&why);
    }
    let mut broker = Broker::start();
    let bus = broker.url();
    let dir = tempfile::tempdir().unwrap();
    let common = ["--bus", bus.as_str(), "--peer-timeout", "3s"];
    let (mut conductor, conductor_addr) =
        Service::start(dir.path(), "conductor", &[&["conductor", "--heartbeat-interval", "1"], &common[..]].concat());
    let (mut agent, agent_addr) = Service::start(
        dir.path(),
        "agent",
        &[&["agent", "--heartbeat-interval", "1", "--hello-retry", "100ms"], &common[..]].concat(),
    );
    let config = driver_config(dir.path());
    let (mut driver, driver_addr) = Service::start(
        dir.path(),
        "driver",
        &[&["driver", "--config", config.as_str(), "--hello-retry", "100ms"], &common[..]].concat(),
    );
    // Each serves on the bus alone, as the instance its endpoint names.
    for (addr, service) in [(&conductor_addr, "conductor"), (&agent_addr, "agent"), (&driver_addr, "driver")] {
        assert!(addr.starts_with(&format!("{bus}/{service}.")), "{addr}");
    }
    let at_conductor = format!("{bus}/conductor");
    let services = &mut [&mut conductor, &mut agent, &mut driver];

    // The agent registered through the broker; discovery reaches the driver through it.
    poll("a discovery run through the conductor, agent and driver", 60, services, || {
        let started = result(&call(&["--connect", &at_conductor, "--timeout", "5s", "conductor.start_discovery"]))?;
        (started["agents"][0]["status"] == "IN-PROGRESS").then_some(())
    });
    let listed = |services: &mut [&mut Service]| {
        poll("the driver's hardware at the conductor", 60, services, || {
            let listed = result(&call(&["--connect", &at_conductor, "--timeout", "5s", "conductor.list_hardware"]))?;
            let hardware = listed["hardware"].as_array()?.clone();
            (!hardware.is_empty()).then_some(hardware)
        })
    };
    let hardware = listed(services);
    assert_eq!((hardware.len(), &hardware[0]["uuid"]), (1, &json!(CRYPTO)));

    // The conformance suite passes against the driver through the broker (each frame a message).
    let conform =
        Command::new(VPROTO).args(["conform", "--target", &driver_addr]).output().expect("vproto conform runs");
    let report = String::from_utf8_lossy(&conform.stdout);
    assert!(
        conform.status.success() && report.contains("0 failed"),
        "{report}{}",
        String::from_utf8_lossy(&conform.stderr)
    );

    // The broker dies: a call through it fails, saying why.
    broker.kill();
    let failed = call(&["--connect", &at_conductor, "--timeout", "3s", "conductor.list_hardware"]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success() && stderr.contains("broker"), "{stderr}");

    // It comes back: the three reconnect by themselves, the agent says hello again, and the
    // hardware is listed through the broker once more.
    broker.restart();
    poll("the agent to be alive at the conductor again", 60, services, || {
        let agents = result(&call(&["--connect", &at_conductor, "--timeout", "5s", "conductor.list_agents"]))?;
        (agents["agents"].as_array()?.len() == 1 && agents["agents"][0]["alive"] == true).then_some(())
    });
    let hardware = listed(services);
    assert_eq!((hardware.len(), &hardware[0]["uuid"]), (1, &json!(CRYPTO)));
    for service in services.iter() {
        assert!(service.log().contains("reconnected to the broker"), "{}", service.log());
    }
}
