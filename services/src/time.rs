//! RFC 3339 timestamps without a date-time dependency.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch as RFC 3339 with whole seconds (see [`rfc3339`]).
pub fn rfc3339_of_millis(millis: i64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_millis(millis.max(0) as u64))
}

/// A wall clock in milliseconds since the Unix epoch that moves with tokio's clock: read once
/// from the system at creation, then advanced by tokio's monotonic time (so a test that pauses
/// and advances tokio's time moves it too, and the system clock being set back does not).
#[cfg(feature = "reference-services")]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    wall: i64,
    instant: tokio::time::Instant,
}

#[cfg(feature = "reference-services")]
impl Clock {
    /// A clock reading the system time now.
    pub(crate) fn now() -> Self {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64;
        Clock { wall, instant: tokio::time::Instant::now() }
    }

    /// The time now, in milliseconds since the Unix epoch.
    pub(crate) fn now_millis(&self) -> i64 {
        self.wall.saturating_add(self.instant.elapsed().as_millis() as i64)
    }

    /// The tokio instant at which the clock reads `millis` (now, for a time past).
    pub(crate) fn instant_at(&self, millis: i64) -> tokio::time::Instant {
        let ahead = millis.saturating_sub(self.now_millis()).max(0) as u64;
        tokio::time::Instant::now() + Duration::from_millis(ahead)
    }
}

/// `time` in UTC as RFC 3339 with whole seconds, such as `2024-05-14T09:30:12Z`.
/// Times before 1970 are written as the epoch.
pub fn rfc3339(time: SystemTime) -> String {
    let (date_time, _) = utc(time);
    format!("{date_time}Z")
}

/// `time` in UTC as RFC 3339 to the millisecond, such as `2024-05-14T09:30:12.345Z` (for
/// readings a rate is computed from). Times before 1970 are written as the epoch.
pub fn rfc3339_millis(time: SystemTime) -> String {
    let (date_time, millis) = utc(time);
    format!("{date_time}.{millis:03}Z")
}

/// `time` in UTC as `YYYY-MM-DDTHH:MM:SS`, and its milliseconds.
fn utc(time: SystemTime) -> (String, u32) {
    let elapsed = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = elapsed.as_secs();
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let text = format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    (text, elapsed.subsec_millis())
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(1_715_679_012)), "2024-05-14T09:30:12Z");
        // A leap day.
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(4_102_444_799)), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn milliseconds_are_written_when_asked() {
        let time = UNIX_EPOCH + Duration::from_millis(1_715_679_012_345);
        assert_eq!(rfc3339_millis(time), "2024-05-14T09:30:12.345Z");
        assert_eq!(rfc3339(time), "2024-05-14T09:30:12Z", "whole seconds, not rounded");
        assert_eq!(rfc3339_millis(UNIX_EPOCH + Duration::from_micros(7)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(UNIX_EPOCH - Duration::from_secs(1)), "1970-01-01T00:00:00.000Z");
    }
}
