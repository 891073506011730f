//! Log timestamps: RFC 3339 UTC with exactly nine fractional digits, always 30 bytes
//! (`2026-11-23T19:03:19.123456789Z`), so a timestamp can be stamped into a prepared entry.
//!
//! A [`Timestamp`] is an `i64` count of nanoseconds since the Unix epoch, which covers
//! 1677-09-21T00:12:43.145224192Z ..= 2262-04-11T23:47:16.854775807Z. Every year in that range
//! has four digits, so [`Timestamp::format`] is fixed-width by construction; [`Timestamp::parse`]
//! rejects anything outside it. Leap seconds do not exist in this representation: a parsed
//! `23:59:60` becomes `23:59:59.999999999` (as the `time` crate does).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Length in bytes of every formatted [`Timestamp`].
pub const TIMESTAMP_LEN: usize = 30;

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// An instant with nanosecond precision, as nanoseconds since 1970-01-01T00:00:00Z.
///
/// Ordering is chronological. Serialized as the 30-byte string of [`Timestamp::format`];
/// deserialized with [`Timestamp::parse`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Timestamp(i64);

/// Why a string is not an acceptable timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimestampError {
    /// Not an RFC 3339 `date-time` (§5.6).
    #[error("not an RFC 3339 date-time (like 2026-11-23T19:03:19Z): {0}")]
    Invalid(String),
    /// A valid RFC 3339 date-time that a signed 64-bit nanosecond count cannot hold.
    #[error(
        "outside the supported range 1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z"
    )]
    OutOfRange,
}

impl Timestamp {
    /// The timestamp `nanos` nanoseconds after the Unix epoch (negative: before it).
    pub const fn from_unix_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn unix_nanos(self) -> i64 {
        self.0
    }

    /// The RFC 3339 UTC form with nine fractional digits; always [`TIMESTAMP_LEN`] bytes.
    pub fn format(&self) -> String {
        let mut out = [0u8; TIMESTAMP_LEN];
        self.write_to(&mut out);
        // Only ASCII digits and punctuation are written, so this never falls back.
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Writes [`Timestamp::format`]'s bytes into `out` without allocating; this is how the
    /// store stamps a time into an entry prepared earlier.
    pub fn write_to(&self, out: &mut [u8; TIMESTAMP_LEN]) {
        let seconds = self.0.div_euclid(NANOS_PER_SECOND);
        let nanos = self.0.rem_euclid(NANOS_PER_SECOND);
        let days = seconds.div_euclid(SECONDS_PER_DAY);
        let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let fields = [
            (0, 4, year),
            (5, 2, month),
            (8, 2, day),
            (11, 2, second_of_day / 3600),
            (14, 2, second_of_day / 60 % 60),
            (17, 2, second_of_day % 60),
            (20, 9, nanos),
        ];
        *out = *b"0000-00-00T00:00:00.000000000Z";
        for (start, width, value) in fields {
            if let Some(digits) = out.get_mut(start..start + width) {
                write_digits(digits, value);
            }
        }
    }

    /// Parses any RFC 3339 `date-time`: any offset (converted to UTC), any number of
    /// fractional digits (digits beyond nanoseconds are truncated), `T`/`t` and `Z`/`z`.
    ///
    /// # Errors
    ///
    /// [`TimestampError::Invalid`] for anything that is not RFC 3339, including ISO 8601
    /// variants RFC 3339 excludes (a space separator, a missing offset);
    /// [`TimestampError::OutOfRange`] if the instant does not fit in `i64` nanoseconds.
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        let nanos = parse_unix_nanos_wide(s)?;
        i64::try_from(nanos)
            .map(Self)
            .map_err(|_| TimestampError::OutOfRange)
    }
}

/// Parses an RFC 3339 `date-time` into nanoseconds since the epoch without the `i64` range
/// limit, so that a client's far-off `client_time` is still accepted (and flagged as skewed).
/// This is the check event validation applies to `client_time`.
///
/// # Errors
///
/// [`TimestampError::Invalid`] for anything that is not an RFC 3339 `date-time` with a `T`
/// (or `t`) between date and time.
pub fn parse_unix_nanos_wide(s: &str) -> Result<i128, TimestampError> {
    // The `time` crate accepts any byte between date and time (RFC 3339 §5.6 lets
    // applications use a space); the JSON Schema `date-time` format does not, and neither
    // do we, so that the schema and this parser accept the same strings.
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't')) {
        return Err(TimestampError::Invalid(
            "date and time must be separated by 'T'".to_owned(),
        ));
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp_nanos)
        .map_err(|e| TimestampError::Invalid(e.to_string()))
}

/// Writes `value` right-aligned in decimal into `digits`, zero-padded, keeping only as many
/// low-order digits as fit (callers pass values that fit).
fn write_digits(digits: &mut [u8], mut value: i64) {
    for slot in digits.iter_mut().rev() {
        let digit = u8::try_from(value.rem_euclid(10)).unwrap_or(0);
        *slot = b'0' + digit;
        value /= 10;
    }
}

/// (year, month, day) of the proleptic Gregorian calendar for a count of days since
/// 1970-01-01: Howard Hinnant's `civil_from_days`, exact for every `i64` nanosecond instant.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // March = 0
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format())
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.format())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extremes_are_fixed_width_and_round_trip() {
        for (nanos, text) in [
            (i64::MIN, "1677-09-21T00:12:43.145224192Z"),
            (i64::MAX, "2262-04-11T23:47:16.854775807Z"),
            (0, "1970-01-01T00:00:00.000000000Z"),
            (-1, "1969-12-31T23:59:59.999999999Z"),
        ] {
            let t = Timestamp::from_unix_nanos(nanos);
            assert_eq!(t.format(), text);
            assert_eq!(Timestamp::parse(text), Ok(t));
        }
    }

    #[test]
    fn agrees_with_the_time_crate_over_the_whole_range() {
        let layout = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
        );
        // A prime stride spreads probes over the full i64 range, hitting many month and
        // year boundaries and both signs.
        let step = i64::MAX / 9_973;
        let mut nanos = i64::MIN;
        while let Some(next) = nanos.checked_add(step) {
            let want = OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
                .map_err(|e| e.to_string())
                .and_then(|dt| dt.format(&layout).map_err(|e| e.to_string()));
            assert_eq!(Ok(Timestamp::from_unix_nanos(nanos).format()), want);
            nanos = next;
        }
    }
}
