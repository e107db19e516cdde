//! Durations on the command line (`--timeout`, `--peer-timeout`, `--hello-retry`, `--idle`).

use std::time::Duration;

/// A duration as users write it: humantime's syntax (`500ms`, `2s`, `1m`, `1h 30m`, ...), plus
/// what vproto accepted before it used humantime: a plain number of seconds (`3`, `0.5`) and a
/// decimal number with one unit (`1.5s`).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError(text.to_string());
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len()));
    if unit.is_empty() || number.contains('.') {
        // humantime reads whole numbers only: scale one of the unit by the number.
        let value: f64 = number.parse().map_err(|_| bad())?;
        let one = if unit.is_empty() {
            Duration::from_secs(1)
        } else {
            humantime::parse_duration(&format!("1{unit}")).map_err(|_| bad())?
        };
        return Duration::try_from_secs_f64(one.as_secs_f64() * value).map_err(|_| bad());
    }
    humantime::parse_duration(text).map_err(|_| bad())
}

/// A command-line value that is not a duration.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("`{0}` is not a duration (such as 500ms, 2s or 1m)")]
pub struct DurationError(String);

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("5h"), Ok(Duration::from_secs(5 * 3600)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("1.5.2s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(
            parse_duration("soon").unwrap_err().to_string(),
            "`soon` is not a duration (such as 500ms, 2s or 1m)"
        );
    }
}
