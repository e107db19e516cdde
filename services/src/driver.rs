//! A Cyborg driver reporting simulated hardware (`driver.*`).
//!
//! The hardware comes from a JSON config file:
//!
//! ```json
//! {
//!   "endpoint": "localhost:1337",
//!   "device_type": "CRYPTO",
//!   "hardware": [ { "uuid": "...", "acc_specs": { ... }, "acc_status": { ... } } ],
//!   "discovery": { "duration_ms": 1000, "outcome": "DONE", "start_error": null }
//! }
//! ```
//!
//! - `endpoint` (optional): the `host:port` the driver announces to its agent; `vproto serve
//!   --endpoint` overrides it, and without either the listen address gives it.
//! - `device_type`: the class of hardware the driver supports (the schema's `DeviceType`);
//!   every device's `acc_specs.device_type` must be the same.
//! - `hardware`: the devices, each the schema's `Hardware` object; uuids must be unique.
//! - `discovery` (optional): how a simulated discovery run behaves. It lasts `duration_ms`
//!   (default 1000; 0 ends it at once), finding the devices one after the other at an even
//!   pace, and ends `DONE` (default) or `FAILED` (then having found the first half of the
//!   devices). With `start_error`, no run can start: `driver.start_discovery` answers
//!   DiscoveryFailed with that reason.
//!
//! Every value is read with the generated types, so a bad config is refused naming the field
//! (`hardware[1].acc_specs.num: ...`).

use std::{
    collections::BTreeSet,
    path::Path,
    sync::{Mutex, OnceLock},
    time::Duration,
};

use serde_json::Value;
use tokio::{task::JoinHandle, time::Instant};
use vproto_api::{
    AgentClient, DeviceType, DiscoveryFailedData, DiscoveryState, DiscoveryStatus, DriverRegistration, DriverService,
    Endpoint, Hardware, HardwareList, ProtocolError, ServiceError,
};
use vproto_support::{rpc::Answer, wire::WirePath};

use crate::{
    config::{read_json, shown, ConfigError, Fields},
    peer::HelloLoop,
};

/// How a simulated discovery run behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct DiscoveryConfig {
    /// How long a run takes.
    pub duration: Duration,
    /// How a run ends: [`DiscoveryState::Done`] or [`DiscoveryState::Failed`].
    pub outcome: DiscoveryState,
    /// When set, no run can start, and `driver.start_discovery` answers DiscoveryFailed with
    /// this reason.
    pub start_error: Option<String>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig { duration: Duration::from_secs(1), outcome: DiscoveryState::Done, start_error: None }
    }
}

/// A driver's config file, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct DriverConfig {
    /// The endpoint announced to the agent, if the file gives one.
    pub endpoint: Option<Endpoint>,
    /// The class of hardware the driver supports.
    pub device_type: DeviceType,
    /// The devices a discovery run finds, in order.
    pub hardware: Vec<Hardware>,
    /// How discovery runs behave.
    pub discovery: DiscoveryConfig,
}

impl DriverConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_json(&read_json(path)?).map_err(|e| e.in_file(path))
    }

    /// Reads and checks a config document.
    pub fn from_json(value: &Value) -> Result<Self, ConfigError> {
        let fields = Fields::new(value, WirePath::root(), &["endpoint", "device_type", "hardware", "discovery"])?;
        let endpoint = fields.optional::<Endpoint>("endpoint")?;
        let device_type = fields.required::<DeviceType>("device_type")?;
        let hardware = fields.required::<Vec<Hardware>>("hardware")?;
        let mut uuids = BTreeSet::new();
        for (index, device) in hardware.iter().enumerate() {
            let path = fields.path("hardware").index(index);
            if device.acc_specs.device_type != device_type {
                return Err(ConfigError::field(
                    shown(&path.field("acc_specs").field("device_type")),
                    format!(
                        "the device is {} but the driver's device_type is {device_type}",
                        device.acc_specs.device_type
                    ),
                ));
            }
            if !uuids.insert(device.uuid.as_str()) {
                return Err(ConfigError::field(
                    shown(&path.field("uuid")),
                    format!("{} is listed twice (device uuids are unique)", device.uuid),
                ));
            }
        }
        let discovery = match fields.raw("discovery") {
            None | Some(Value::Null) => DiscoveryConfig::default(),
            Some(value) => read_discovery(value, fields.path("discovery"))?,
        };
        Ok(DriverConfig { endpoint, device_type, hardware, discovery })
    }
}

fn read_discovery(value: &Value, path: WirePath) -> Result<DiscoveryConfig, ConfigError> {
    let fields = Fields::new(value, path, &["duration_ms", "outcome", "start_error"])?;
    let defaults = DiscoveryConfig::default();
    let duration = match fields.optional::<i64>("duration_ms")? {
        None => defaults.duration,
        Some(ms) if ms >= 0 => Duration::from_millis(ms as u64),
        Some(ms) => return Err(ConfigError::field(shown(&fields.path("duration_ms")), format!("{ms} is negative"))),
    };
    let outcome = match fields.optional::<DiscoveryState>("outcome")? {
        None => defaults.outcome,
        Some(DiscoveryState::InProgress) => {
            return Err(ConfigError::field(
                shown(&fields.path("outcome")),
                "a run ends DONE or FAILED, not IN-PROGRESS",
            ))
        }
        Some(outcome) => outcome,
    };
    let start_error = fields.optional::<String>("start_error")?;
    Ok(DiscoveryConfig { duration, outcome, start_error })
}

/// Where the discovery of a driver stands.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Run {
    /// No run yet: nothing discovered.
    Never,
    /// A run started at this instant.
    Running(Instant),
    /// The last run ended DONE or FAILED.
    Ended(bool),
}

/// The simulated driver.
pub struct Driver {
    config: DriverConfig,
    endpoint: OnceLock<Endpoint>,
    run: Mutex<Run>,
}

impl Driver {
    /// A driver with nothing discovered yet.
    pub fn new(config: DriverConfig) -> Self {
        let endpoint = OnceLock::new();
        if let Some(configured) = &config.endpoint {
            let _ = endpoint.set(configured.clone());
        }
        Driver { config, endpoint, run: Mutex::new(Run::Never) }
    }

    /// The driver's config.
    pub fn config(&self) -> &DriverConfig {
        &self.config
    }

    /// The endpoint the driver announces, once known.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.endpoint.get()
    }

    /// Sets the endpoint when the config gave none (the first one set stays).
    pub fn set_endpoint(&self, endpoint: Endpoint) {
        let _ = self.endpoint.set(endpoint);
    }

    /// The run, with a running one that has had its time ended.
    fn current(&self) -> std::sync::MutexGuard<'_, Run> {
        let mut run = self.run.lock().unwrap_or_else(|p| p.into_inner());
        if let Run::Running(started) = *run {
            if started.elapsed() >= self.config.discovery.duration {
                let done = self.config.discovery.outcome == DiscoveryState::Done;
                *run = Run::Ended(done);
                tracing::info!(outcome = %self.config.discovery.outcome, "discovery run ended");
            }
        }
        run
    }

    /// The state of the current run, `None` before any.
    pub fn state(&self) -> Option<DiscoveryState> {
        match *self.current() {
            Run::Never => None,
            Run::Running(_) => Some(DiscoveryState::InProgress),
            Run::Ended(true) => Some(DiscoveryState::Done),
            Run::Ended(false) => Some(DiscoveryState::Failed),
        }
    }

    /// How many devices the current run has found.
    fn found(&self) -> usize {
        let all = self.config.hardware.len();
        match *self.current() {
            Run::Never => 0,
            Run::Ended(true) => all,
            Run::Ended(false) => all / 2,
            Run::Running(started) => {
                let total = self.config.discovery.duration.as_nanos().max(1);
                (all as u128 * started.elapsed().as_nanos() / total).min(all as u128) as usize
            }
        }
    }
}

impl DriverService for Driver {
    async fn start_discovery(&self) -> Result<Answer<DiscoveryStatus>, ServiceError> {
        if let Some(reason) = &self.config.discovery.start_error {
            let endpoint = self
                .endpoint()
                .cloned()
                .ok_or_else(|| ServiceError::Internal("discovery failed before the endpoint was known".into()))?;
            tracing::warn!(%reason, "discovery cannot start");
            return Err(ProtocolError::DiscoveryFailed(DiscoveryFailedData { endpoint, reason: reason.clone() }).into());
        }
        let mut run = self.current();
        let status = match *run {
            // Idempotent: join the run in progress.
            Run::Running(_) => DiscoveryState::InProgress,
            Run::Never | Run::Ended(_) if self.config.discovery.duration.is_zero() => {
                let done = self.config.discovery.outcome == DiscoveryState::Done;
                *run = Run::Ended(done);
                self.config.discovery.outcome.clone()
            }
            Run::Never | Run::Ended(_) => {
                tracing::info!(devices = self.config.hardware.len(), duration = ?self.config.discovery.duration, "discovery run started");
                *run = Run::Running(Instant::now());
                DiscoveryState::InProgress
            }
        };
        Ok(DiscoveryStatus { status }.into())
    }

    async fn discovery_status(&self) -> Result<Answer<DiscoveryStatus>, ServiceError> {
        // Before any run nothing runs and nothing was found: DONE, as the empty hardware list.
        let status = self.state().unwrap_or(DiscoveryState::Done);
        Ok(DiscoveryStatus { status }.into())
    }

    async fn list_hardware(&self) -> Result<Answer<HardwareList>, ServiceError> {
        let found = self.found();
        Ok(HardwareList { hardware: self.config.hardware[..found].to_vec() }.into())
    }
}

/// Says hello to the agent now and every half heartbeat interval after, as `registration`.
pub fn say_hello(hello: HelloLoop, registration: DriverRegistration) -> JoinHandle<()> {
    hello.spawn(move |client| {
        let registration = registration.clone();
        async move { AgentClient::new(client).hello(&registration).await }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn device(uuid: &str, device_type: &str) -> Value {
        json!({
            "uuid": uuid,
            "acc_specs": {"remote": false, "num": 1, "device_type": device_type,
                          "acc_capability": {"num": 2, "features": {"ipsec": {"features": {"aes": {"num": 1}}}}}},
            "acc_status": {"setup_required": true, "reboot_required": false}
        })
    }

    fn config(duration_ms: u64) -> Value {
        json!({
            "endpoint": "localhost:1337",
            "device_type": "CRYPTO",
            "hardware": [
                device("8e45a2ea-5364-4b0d-a252-bf8becaa606e", "CRYPTO"),
                device("c1f0d8a4-27b6-4e9a-9d35-5e0a7b3c2f18", "CRYPTO"),
            ],
            "discovery": {"duration_ms": duration_ms}
        })
    }

    fn refused(value: Value) -> String {
        DriverConfig::from_json(&value).unwrap_err().to_string()
    }

    #[test]
    fn a_bad_config_names_the_field() {
        let mut bad = config(10);
        bad["hardware"][1]["uuid"] = json!("not-a-uuid");
        let text = refused(bad);
        assert!(text.starts_with("field `hardware[1].uuid`"), "{text}");

        let mut bad = config(10);
        bad["hardware"][0]["acc_specs"]["num"] = json!(-1);
        assert!(refused(bad).contains("hardware[0].acc_specs.num"));

        let mut bad = config(10);
        bad["hardware"][0]["acc_status"].as_object_mut().unwrap().remove("reboot_required");
        let text = refused(bad);
        assert!(text.contains("hardware[0].acc_status") && text.contains("reboot_required"), "{text}");

        let mut bad = config(10);
        bad["hardware"][1] = device("8e45a2ea-5364-4b0d-a252-bf8becaa606e", "CRYPTO");
        assert!(refused(bad).contains("field `hardware[1].uuid`: 8e45a2ea-5364-4b0d-a252-bf8becaa606e is listed twice"));

        let mut bad = config(10);
        bad["hardware"][0] = device("8e45a2ea-5364-4b0d-a252-bf8becaa606e", "GPU");
        assert!(refused(bad).contains("field `hardware[0].acc_specs.device_type`: the device is GPU"));

        let mut bad = config(10);
        bad["endpoint"] = json!("no port");
        assert!(refused(bad).contains("field `endpoint`"));

        let mut bad = config(10);
        bad["hardwares"] = json!([]);
        assert!(refused(bad).contains("field `hardwares`: unknown field"));

        let mut bad = config(10);
        bad.as_object_mut().unwrap().remove("device_type");
        assert_eq!(refused(bad), "field `device_type`: missing required field");

        let mut bad = config(10);
        bad["discovery"]["outcome"] = json!("IN-PROGRESS");
        assert!(refused(bad).contains("field `discovery.outcome`"));
    }

    #[test]
    fn a_config_file_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("driver.json");
        std::fs::write(&path, "{\"device_type\": \"GPU\"}").unwrap();
        let text = DriverConfig::load(&path).unwrap_err().to_string();
        assert!(text.contains("driver.json") && text.contains("field `hardware`: missing required field"), "{text}");
        std::fs::write(&path, "{").unwrap();
        assert!(DriverConfig::load(&path).unwrap_err().to_string().contains("not valid JSON"));
    }

    #[tokio::test(start_paused = true)]
    async fn discovery_goes_in_progress_then_done_and_finds_devices_on_the_way() {
        let driver = Driver::new(DriverConfig::from_json(&config(1000)).unwrap());
        assert!(driver.list_hardware().await.unwrap().into_value().hardware.is_empty(), "nothing before any run");
        assert_eq!(driver.start_discovery().await.unwrap().into_value().status, DiscoveryState::InProgress);
        assert_eq!(driver.list_hardware().await.unwrap().into_value().hardware.len(), 0);
        tokio::time::advance(Duration::from_millis(600)).await;
        // A second trigger joins the run instead of restarting it.
        assert_eq!(driver.start_discovery().await.unwrap().into_value().status, DiscoveryState::InProgress);
        assert_eq!(driver.list_hardware().await.unwrap().into_value().hardware.len(), 1);
        tokio::time::advance(Duration::from_millis(400)).await;
        assert_eq!(driver.state(), Some(DiscoveryState::Done));
        let listed = driver.list_hardware().await.unwrap().into_value().hardware;
        assert_eq!(listed, driver.config().hardware);
    }

    #[tokio::test]
    async fn an_instant_run_answers_its_outcome() {
        let mut value = config(0);
        value["discovery"]["outcome"] = json!("FAILED");
        let driver = Driver::new(DriverConfig::from_json(&value).unwrap());
        assert_eq!(driver.start_discovery().await.unwrap().into_value().status, DiscoveryState::Failed);
        assert_eq!(
            driver.list_hardware().await.unwrap().into_value().hardware.len(),
            1,
            "half was found before failing"
        );
    }

    #[tokio::test]
    async fn a_run_that_cannot_start_is_discovery_failed() {
        let mut value = config(0);
        value["discovery"]["start_error"] = json!("probe tool missing");
        let driver = Driver::new(DriverConfig::from_json(&value).unwrap());
        let error = driver.start_discovery().await.unwrap_err();
        let expected = ProtocolError::DiscoveryFailed(DiscoveryFailedData {
            endpoint: Endpoint::new("localhost:1337").unwrap(),
            reason: "probe tool missing".into(),
        });
        assert_eq!(error, ServiceError::Protocol(expected));
    }
}
