//! Times and durations as people and machines read them: RFC 3339 UTC, seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `seconds` since the Unix epoch as RFC 3339 UTC, e.g. `2026-01-02T03:04:05Z`.
pub(crate) fn rfc3339(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A `SystemTime` as RFC 3339 UTC with milliseconds, e.g. `2026-01-02T03:04:05.678Z`.
pub(crate) fn rfc3339_millis(time: SystemTime) -> String {
    let millis = unix_millis(time);
    let base = rfc3339(millis.div_euclid(1000));
    format!(
        "{}.{:03}Z",
        base.trim_end_matches('Z'),
        millis.rem_euclid(1000)
    )
}

/// A `SystemTime` in seconds since the Unix epoch, with fractions.
pub(crate) fn unix_seconds_f64(time: SystemTime) -> f64 {
    unix_millis(time) as f64 / 1000.0
}

/// The current time in whole seconds since the Unix epoch.
pub(crate) fn now_unix() -> i64 {
    unix_millis(SystemTime::now()).div_euclid(1000)
}

fn unix_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// A duration the way the command line takes it: `250ms`, `2s`, `1m`, `1h`.
pub(crate) fn human_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        "0s".to_owned()
    } else if nanos % 3_600_000_000_000 == 0 {
        format!("{}h", nanos / 3_600_000_000_000)
    } else if nanos % 60_000_000_000 == 0 {
        format!("{}m", nanos / 60_000_000_000)
    } else if nanos % 1_000_000_000 == 0 {
        format!("{}s", nanos / 1_000_000_000)
    } else if nanos % 1_000_000 == 0 {
        format!("{}ms", nanos / 1_000_000)
    } else {
        format!("{duration:?}")
    }
}

/// Year, month and day of the day `days` after 1970-01-01 (proleptic Gregorian),
/// after Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are small and positive by construction.
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_767_323_045), "2026-01-02T03:04:05Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_767_323_045_678);
        assert_eq!(rfc3339_millis(t), "2026-01-02T03:04:05.678Z");
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(human_duration(Duration::from_secs(2)), "2s");
        assert_eq!(human_duration(Duration::from_secs(120)), "2m");
        assert_eq!(human_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(human_duration(Duration::from_secs(5400)), "90m");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1500ms");
    }
}
