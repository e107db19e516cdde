//! Errors: codes outside JSON-RPC's reserved range and unique, `since` a protocol version.

use std::collections::BTreeMap;

use super::Checker;
use crate::diagnostic::pointer;

impl Checker<'_> {
    /// Every declared error.
    pub(super) fn errors(&mut self) {
        let mut codes: BTreeMap<i64, &str> = BTreeMap::new();
        for (name, error) in &self.schema.errors {
            let at = pointer(&["errors", name]);
            if (-32768..=-32000).contains(&error.code) {
                self.out.push(
                    format!("{at}/code"),
                    format!("code {} is reserved by JSON-RPC 2.0", error.code),
                    "use a code outside -32768..-32000",
                );
            }
            if let Some(other) = codes.insert(error.code, name) {
                self.out.push(
                    format!("{at}/code"),
                    format!("code {} is already used by {other}", error.code),
                    "error codes are stable and unique; pick another",
                );
            }
            self.protocol_version(&format!("{at}/since"), error.since);
            if let Some(data) = &error.data {
                self.type_expr(&format!("{at}/data"), data, None);
            }
        }
    }
}
