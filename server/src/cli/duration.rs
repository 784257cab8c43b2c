//! Durations on the command line: `250ms`, `2s`, `1.5s`, `1m`, `1h`.

use std::time::Duration;

/// Parses a duration such as `250ms`, `2s`, `1.5s`, `1m` or `1h`.
///
/// The unit is required: a bare number is ambiguous.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{text}` has no unit; write e.g. 250ms, 2s or 1m"))?;
    let (number, unit) = text.split_at(split);
    let nanos_per_unit = match unit.trim() {
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`; use ms, s, m or h (e.g. 250ms, 2s, 1m)"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write e.g. 250ms, 2s or 1m"))?;
    // Whole numbers of nanoseconds below 2^53 are exact in an f64, so `20ms` is
    // exactly 20 ms (a seconds-based float would make it 19.999999 ms).
    let nanos = (value * nanos_per_unit).round();
    if !(0.0..1e18).contains(&nanos) {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// Like [`parse_duration`], refusing zero.
pub(crate) fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("`{text}` must be greater than zero"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "5", "ms", "1d", "-1s", "1..2s", "1 m s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_positive_duration("0ms").is_err());
    }
}
