//! The config files: any bytes as a driver's (`DriverConfig`) and a network host's
//! (`NetworkHostConfig`) config, read as `vproto serve --config` reads them (JSON, then every
//! field checked with the generated types). What must hold: no panic, and every refusal says
//! which field and why.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vproto_services::{config::ConfigError, driver::DriverConfig, network::NetworkHostConfig};

fn check_refusal(error: ConfigError) {
    if let ConfigError::Field { field, reason, .. } = &error {
        assert!(!field.is_empty() && !reason.is_empty(), "{error:?} names no field or reason");
    }
    assert!(!error.to_string().is_empty());
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Err(error) = DriverConfig::from_json(&value) {
        check_refusal(error);
    }
    if let Err(error) = NetworkHostConfig::from_json(&value) {
        check_refusal(error);
    }
});
