//! Log timestamps: RFC 3339 UTC with exactly nine fractional digits, always 30 bytes
//! (`2026-11-23T19:03:19.123456789Z`), so a timestamp can be stamped into a prepared entry.
//!
// API (to implement):
// pub const TIMESTAMP_LEN: usize = 30;
// #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)] pub struct Timestamp(i64 /* ns since Unix epoch */);
//   from_unix_nanos(i64), unix_nanos(), format() -> String (always 30 bytes), write_to(&self, out: &mut [u8]) (exactly 30),
//   parse(&str) -> Result<Timestamp, TimestampError> (any RFC 3339 offset, any fraction digits; for client_time and stored times)
//   Serialize/Deserialize as the 30-byte string.
