//! The pure access rules: what a writer's events must say, and which entries a principal
//! may see.

use serde_json::{Map, Value};
use thiserror::Error;

use crate::model::{Principal, Role};
use crate::META_SOURCE;

/// Why a writer may not write an event.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BindError {
    /// The event names a source other than the writer's.
    #[error("the event names source {named:?}, but this token writes only as source {bound:?}")]
    OtherSource {
        /// The source in the event.
        named: String,
        /// The writer's source.
        bound: String,
    },
    /// The event names a tenant the writer may not write.
    #[error("the event names tenant {named:?}, but this token writes only for tenant(s) {}", .allowed.join(", "))]
    OtherTenant {
        /// The tenant in the event.
        named: String,
        /// The writer's tenants.
        allowed: Vec<String>,
    },
    /// The writer has several tenants and the event names none.
    #[error("the event names no tenant; this token writes for several ({}), so each event must name one", .allowed.join(", "))]
    TenantRequired {
        /// The writer's tenants.
        allowed: Vec<String>,
    },
    /// The event claims to be from the log's meta-log.
    #[error("source {META_SOURCE:?} is reserved for the log's own meta-log events")]
    ReservedSource,
}

/// An event field as binding sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field<'a> {
    /// The event leaves the field out.
    Absent,
    /// The field holds this string.
    Text(&'a str),
    /// The field holds something else (for validation to report).
    Other,
}

impl<'a> Field<'a> {
    fn of(value: Option<&'a Value>) -> Self {
        match value {
            None => Field::Absent,
            Some(Value::String(s)) => Field::Text(s),
            Some(_) => Field::Other,
        }
    }
}

/// What a writer's bindings fill in: the bound `source` and `tenant` of an event that leaves
/// them out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stamps {
    /// The writer's source, for an event without one.
    pub source: Option<String>,
    /// The writer's only tenant, for an event without one.
    pub tenant: Option<String>,
}

/// The bindings rule for an event whose `source` and `tenant` are as given: what to fill in,
/// or why the event may not be written. A missing `source` or (for a writer of exactly one
/// tenant) `tenant` is filled in; one that names another is refused. Values that are not
/// strings are left for validation to report. No client event may claim the meta-log's
/// source.
///
/// `principal` is `None` when authentication is off; only the reserved-source rule applies.
///
/// # Errors
/// The first binding the event breaks.
pub fn binding(
    principal: Option<&Principal>,
    source: Field<'_>,
    tenant: Field<'_>,
) -> Result<Stamps, BindError> {
    let mut stamps = Stamps::default();
    if let Some(p) = principal {
        if let Some(bound) = &p.source {
            match source {
                Field::Absent => stamps.source = Some(bound.clone()),
                Field::Text(named) if named != bound => {
                    return Err(BindError::OtherSource {
                        named: named.to_owned(),
                        bound: bound.clone(),
                    })
                }
                Field::Text(_) | Field::Other => {}
            }
        }
        match (tenant, p.tenants.as_slice()) {
            (_, []) => {}
            (Field::Absent, [only]) => stamps.tenant = Some(only.clone()),
            (Field::Absent, several) => {
                return Err(BindError::TenantRequired {
                    allowed: several.to_vec(),
                })
            }
            (Field::Text(named), allowed) if !allowed.iter().any(|a| a == named) => {
                return Err(BindError::OtherTenant {
                    named: named.to_owned(),
                    allowed: allowed.to_vec(),
                })
            }
            (Field::Text(_) | Field::Other, _) => {}
        }
    }
    let effective = match (&stamps.source, source) {
        (Some(stamped), _) => Some(stamped.as_str()),
        (None, Field::Text(named)) => Some(named),
        (None, _) => None,
    };
    if effective == Some(META_SOURCE) {
        return Err(BindError::ReservedSource);
    }
    Ok(stamps)
}

/// Applies [`binding`] to one event's JSON object, before validation (so a filled-in field
/// is validated like a sent one).
///
/// # Errors
/// The first binding the event breaks.
pub fn bind_event(
    principal: Option<&Principal>,
    event: &mut Map<String, Value>,
) -> Result<(), BindError> {
    let stamps = binding(
        principal,
        Field::of(event.get("source")),
        Field::of(event.get("tenant")),
    )?;
    if let Some(source) = stamps.source {
        event.insert("source".to_owned(), Value::String(source));
    }
    if let Some(tenant) = stamps.tenant {
        event.insert("tenant".to_owned(), Value::String(tenant));
    }
    Ok(())
}

/// Whether `principal` may see an entry whose `tenant` is `tenant`: an auditor sees every
/// entry; a reader only entries of its tenants (an entry without a tenant, such as a
/// meta-log event, is no reader's); writers and admins see none.
pub fn may_see(principal: &Principal, tenant: Option<&str>) -> bool {
    match principal.role {
        Role::Auditor => true,
        Role::Reader => tenant.is_some_and(|t| principal.tenants.iter().any(|own| own == t)),
        Role::Writer | Role::Admin => false,
    }
}

/// The `tenant` of a stored entry, read without decoding the rest; `None` if it has none
/// or is not a JSON object with a string tenant (which no entry of this log is).
pub fn entry_tenant(entry: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct TenantOnly {
        tenant: Option<String>,
    }
    serde_json::from_slice::<TenantOnly>(entry).ok()?.tenant
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn principal(role: Role, tenants: &[&str], source: Option<&str>) -> Principal {
        Principal {
            id: "token:0000000000000000".to_owned(),
            role,
            tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
            source: source.map(str::to_owned),
            label: None,
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_bound_writer_gets_its_source_and_tenant_stamped() {
        let w = principal(Role::Writer, &["acme"], Some("gw-1"));
        let mut e = obj(json!({"action": "a.b"}));
        bind_event(Some(&w), &mut e).unwrap();
        assert_eq!(e["source"], "gw-1");
        assert_eq!(e["tenant"], "acme");
        let mut same = obj(json!({"source": "gw-1", "tenant": "acme"}));
        bind_event(Some(&w), &mut same).unwrap();
    }

    #[test]
    fn a_bound_writer_cannot_name_another_source_or_tenant() {
        let w = principal(Role::Writer, &["acme"], Some("gw-1"));
        let mut e = obj(json!({"source": "gw-2"}));
        let err = bind_event(Some(&w), &mut e).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the event names source \"gw-2\", but this token writes only as source \"gw-1\""
        );
        let mut e = obj(json!({"tenant": "globex"}));
        assert!(matches!(
            bind_event(Some(&w), &mut e),
            Err(BindError::OtherTenant { .. })
        ));
        let two = principal(Role::Writer, &["acme", "globex"], None);
        let mut none = obj(json!({}));
        assert!(matches!(
            bind_event(Some(&two), &mut none),
            Err(BindError::TenantRequired { .. })
        ));
        let mut globex = obj(json!({"tenant": "globex"}));
        bind_event(Some(&two), &mut globex).unwrap();
        assert!(!globex.contains_key("source"));
    }

    #[test]
    fn nobody_writes_as_the_meta_log() {
        let free = principal(Role::Writer, &[], None);
        let mut e = obj(json!({"source": META_SOURCE}));
        assert_eq!(
            bind_event(Some(&free), &mut e),
            Err(BindError::ReservedSource)
        );
        assert_eq!(bind_event(None, &mut e), Err(BindError::ReservedSource));
        // Non-string values are validation's business.
        let mut odd = obj(json!({"source": 7, "tenant": false}));
        bind_event(
            Some(&principal(Role::Writer, &["acme"], Some("gw"))),
            &mut odd,
        )
        .unwrap();
    }

    #[test]
    fn readers_see_only_their_tenants_and_auditors_everything() {
        let r = principal(Role::Reader, &["acme", "initech"], None);
        assert!(may_see(&r, Some("acme")));
        assert!(may_see(&r, Some("initech")));
        assert!(!may_see(&r, Some("globex")));
        assert!(!may_see(&r, None));
        let a = principal(Role::Auditor, &[], None);
        assert!(may_see(&a, None) && may_see(&a, Some("globex")));
        for role in [Role::Writer, Role::Admin] {
            assert!(!may_see(&principal(role, &["acme"], None), Some("acme")));
        }
        assert_eq!(
            entry_tenant(br#"{"action":"a.b","tenant":"acme","time":"x"}"#).as_deref(),
            Some("acme")
        );
        assert_eq!(entry_tenant(br#"{"action":"a.b"}"#), None);
        assert_eq!(entry_tenant(b"not json"), None);
    }
}
