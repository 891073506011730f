//! Parsers for durations (`250ms`, `1s`, `1m30s`) and byte sizes (`16MiB`, `1048576`) given on
//! the command line.

use std::time::Duration;

/// Parses a duration as one or more `<integer><unit>` parts, units `ns`, `us`, `ms`, `s`, `m`,
/// `h` (as in humantime and Go's `time.ParseDuration`, without fractions).
///
/// # Errors
/// A message naming what is wrong, for clap to show.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration such as 250ms, 1s or 1m30s");
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(digits);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let part = match unit {
            "ns" => Duration::from_nanos(n),
            "us" | "µs" => Duration::from_micros(n),
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = next;
    }
    Ok(total)
}

/// Parses a byte count: an integer, optionally followed by `K`, `KiB`, `M`, `MiB`, `G` or
/// `GiB` (all binary multiples; `KB`/`MB` are accepted as the same).
///
/// # Errors
/// A message naming what is wrong, for clap to show.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let bad = || format!("{s:?} is not a byte size such as 1048576, 512KiB or 16MiB");
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits);
    let n: usize = num.parse().map_err(|_| bad())?;
    let shift = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(bad()),
    };
    n.checked_mul(1usize << shift).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_the_forms_the_help_text_promises() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("10us"), Ok(Duration::from_micros(10)));
        for bad in [
            "",
            "1",
            "s",
            "1.5s",
            "1 s",
            "-1s",
            "1d",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn byte_sizes_with_binary_suffixes() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("16MiB"), Ok(16 << 20));
        assert_eq!(parse_bytes("512k"), Ok(512 << 10));
        assert_eq!(parse_bytes("1 GiB"), Ok(1 << 30));
        for bad in ["", "MiB", "1TiB", "-1", "1.5M"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?} accepted");
        }
    }
}
