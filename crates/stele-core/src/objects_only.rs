//! [`objects_only!`](crate::objects_only): record types that deserialize from JSON objects
//! only.

/// Implements `serde::Deserialize` for structs with one lifetime parameter so that each
/// takes a JSON object (a map) only.
///
/// serde's derived structs also accept an array of their fields in order, so a record sent
/// as `["alice", "read"]` would be read as if its first fields had those values: input that
/// should be refused with "expected an object". Each struct derives `Deserialize` with
/// `#[serde(remote = "Self")]`, which makes the derived code an inherent `deserialize`
/// function instead of the trait's; the impl this macro writes asks the deserializer for a
/// map and hands that to it. Borrowed fields stay borrowed.
///
/// ```
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// #[serde(remote = "Self")]
/// struct Record<'a> {
///     #[serde(borrow)]
///     user: &'a str,
/// }
/// stele_core::objects_only!(Record);
///
/// let ok: Record<'_> = serde_json::from_str(r#"{"user": "alice"}"#).unwrap();
/// assert_eq!(ok.user, "alice");
/// let err = serde_json::from_str::<Record<'_>>(r#"["alice"]"#).err().unwrap();
/// assert!(err.to_string().contains("expected an object"));
/// ```
#[macro_export]
macro_rules! objects_only {
    ($($record:ident),* $(,)?) => {$(
        impl<'de: 'a, 'a> ::serde::Deserialize<'de> for $record<'a> {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::core::result::Result<Self, D::Error> {
                struct ObjectOnly;
                impl<'de> ::serde::de::Visitor<'de> for ObjectOnly {
                    type Value = $record<'de>;
                    fn expecting(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<M: ::serde::de::MapAccess<'de>>(self, map: M) -> ::core::result::Result<$record<'de>, M::Error> {
                        $record::deserialize(::serde::de::value::MapAccessDeserializer::new(map))
                    }
                }
                deserializer.deserialize_map(ObjectOnly)
            }
        }
    )*};
}
