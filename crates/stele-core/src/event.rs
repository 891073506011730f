//! The event, schema v1: validation with JSON paths, and the canonical encoding stored as the
//! log entry.
//!
// API (to implement):
// pub struct EventLimits { pub max_context_bytes: usize /* default 16384, canonical size of `context` */,
//                          pub max_entry_bytes: usize /* default 65535 (tlog-tiles u16 bound) */,
//                          pub client_time_tolerance_ns: i64 /* default 5 min */ }  + Default
// pub struct FieldError { pub path: String /* "$.actor.type", "$.context" */, pub message: String } (Serialize, Display)
// pub struct Event { id: Option<Uuid>, actor: Actor, action: String, resource: Resource, outcome: Outcome, reason, policy,
//                    tenant, source, change: Option<Map>, context: Option<Map>, client_time: Option<String> } (Serialize, Deserialize)
// pub fn validate(value: &serde_json::Value, limits: &EventLimits) -> Result<Event, Vec<FieldError>>
//   every problem reported (not just the first); unknown top-level fields rejected; "time" and
//   "client_time_skewed" are server-assigned and rejected from clients.
// pub struct PreparedEvent { pub id: Uuid, pub bytes: Vec<u8>, pub time_offset: usize, pub content_digest: [u8; 16] }
//   bytes = RFC 8785 canonical JSON of the stored event with a placeholder time; time_offset = offset of
//   the 30-byte time value (inside the quotes); content_digest = first 16 bytes of SHA-256 of the
//   canonical event without `time` and `client_time_skewed` (identical client content => identical digest).
// impl Event { pub fn prepare(self, assigned_id: Uuid, now: Timestamp, limits: &EventLimits) -> Result<PreparedEvent, FieldError> }
//   (uses the client id if present, else assigned_id; sets client_time_skewed: true when |now - client_time| > tolerance;
//    errors if the entry exceeds max_entry_bytes, path "$")
// pub fn stamp_time(entry: &mut [u8], time_offset: usize, t: Timestamp)
// pub fn entry_key(entry: &[u8]) -> Option<(Uuid, [u8; 16])>   // id and content digest recomputed from a stored entry
// pub fn parse_entry(entry: &[u8]) -> Result<serde_json::Value, ...>
