//! Stored events as OCSF events (Open Cybersecurity Schema Framework, the 1.9.0-dev schema
//! in shared/testdata/ocsf), so that SIEMs can take them:
//!
//! - **Account Change** (class 3001) for changes to an account: actions whose resource type
//!   is `user`, `account` or `service_account`, or whose first segment is `user` or
//!   `account`, with a last segment naming one of the class's activities (create, enable,
//!   password change/reset, disable, delete, attach/detach policy, lock, MFA enable/disable,
//!   unlock).
//! - **Authorize Session** (3003) for grants of roles, groups and privileges (`role.grant`,
//!   `role.assign`, `group.add`, `privilege.grant`, …).
//! - **API Activity** (6003) for every other event: authorization checks and decisions,
//!   Kubernetes requests, OPA decisions; the activity is Create/Read/Update/Delete when the
//!   action's verb says so, else Other (99) with the action as `activity_name`.
//!
//! Common to all: `status_id` 1 (Success) for `allow`, 2 (Failure) for `deny`, 0 (Unknown)
//! for `error`, with `disposition_id` 1 Allowed / 2 Blocked (the Security Control profile);
//! `time` is the log's time in milliseconds; `metadata.uid` is the event id; `raw_data` is the
//! integration's `original` record when there is one, else the stored entry itself; what has
//! no OCSF place (`context`, `change`) goes to `unmapped`. The mapping is documented in
//! `docs/integrations/ocsf.md`.

use serde_json::{json, Map, Value};
use stele_core::event::{decode_entry, EntryError, Outcome, StoredEvent};

/// The OCSF schema version the mapping follows.
pub const OCSF_VERSION: &str = "1.9.0-dev";

/// An OCSF class the mapping produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Account Change, 3001.
    AccountChange,
    /// Authorize Session, 3003.
    AuthorizeSession,
    /// API Activity, 6003.
    ApiActivity,
}

impl Class {
    /// `class_uid`.
    pub fn uid(self) -> u32 {
        match self {
            Class::AccountChange => 3001,
            Class::AuthorizeSession => 3003,
            Class::ApiActivity => 6003,
        }
    }
    /// `class_name`.
    pub fn name(self) -> &'static str {
        match self {
            Class::AccountChange => "Account Change",
            Class::AuthorizeSession => "Authorize Session",
            Class::ApiActivity => "API Activity",
        }
    }
    fn category(self) -> (u32, &'static str) {
        match self {
            Class::AccountChange | Class::AuthorizeSession => (3, "Identity & Access Management"),
            Class::ApiActivity => (6, "Application Activity"),
        }
    }
}

/// Maps a stored entry (the bytes the log holds) to an OCSF event.
///
/// # Errors
///
/// [`EntryError`] if the bytes are not a stored event of schema v1.
pub fn from_entry(entry: &[u8]) -> Result<Value, EntryError> {
    let stored = decode_entry(entry)?;
    Ok(map(&stored, entry))
}

/// The class and activity (`activity_id`, `activity_name`) for an action and resource type.
pub fn classify(action: &str, resource_type: &str) -> (Class, u32, String) {
    let mut segments = action.split('.');
    let first = segments.next().unwrap_or_default();
    let last = action.rsplit('.').next().unwrap_or_default();
    let verb = last.replace('-', "_");
    let account = matches!(resource_type, "user" | "account" | "service_account")
        || matches!(first, "user" | "account");
    if account {
        let activity = match verb.as_str() {
            "create" | "add" | "provision" => Some((1, "Create")),
            "enable" | "activate" | "reactivate" => Some((2, "Enable")),
            "password_change" | "change_password" => Some((3, "Password Change")),
            "password_reset" | "reset_password" => Some((4, "Password Reset")),
            "disable" | "deactivate" | "suspend" => Some((5, "Disable")),
            "delete" | "remove" | "deprovision" => Some((6, "Delete")),
            "attach_policy" | "policy_attach" => Some((7, "Attach Policy")),
            "detach_policy" | "policy_detach" => Some((8, "Detach Policy")),
            "lock" => Some((9, "Lock")),
            "mfa_enable" | "enable_mfa" => Some((10, "MFA Factor Enable")),
            "mfa_disable" | "disable_mfa" => Some((11, "MFA Factor Disable")),
            "unlock" => Some((12, "Unlock")),
            _ => None,
        };
        if let Some((id, name)) = activity {
            return (Class::AccountChange, id, name.to_owned());
        }
    }
    let grant = matches!(verb.as_str(), "grant" | "assign" | "add" | "bind");
    match (first, grant) {
        ("privilege" | "permission", true) => {
            return (Class::AuthorizeSession, 1, "Assign Privileges".to_owned())
        }
        ("group", true) => return (Class::AuthorizeSession, 2, "Assign Groups".to_owned()),
        ("role", true) => return (Class::AuthorizeSession, 3, "Assign Roles".to_owned()),
        _ => {}
    }
    let crud = match verb.as_str() {
        "create" | "post" | "insert" | "add" => Some((1, "Create")),
        "read" | "get" | "list" | "watch" | "view" | "head" | "check" | "decision" => {
            Some((2, "Read"))
        }
        "update" | "patch" | "put" | "write" | "edit" | "modify" => Some((3, "Update")),
        "delete" | "deletecollection" | "remove" => Some((4, "Delete")),
        _ => None,
    };
    match crud {
        Some((id, name)) => (Class::ApiActivity, id, name.to_owned()),
        None => (Class::ApiActivity, 99, action.to_owned()),
    }
}

fn map(stored: &StoredEvent, entry: &[u8]) -> Value {
    let e = &stored.event;
    let (class, activity_id, activity_name) = classify(e.action(), &e.resource().kind);
    let (category_uid, category_name) = class.category();
    let (status_id, status, disposition_id, disposition, severity_id) = match e.outcome() {
        Outcome::Allow => (1, "Success", 1, "Allowed", 1),
        Outcome::Deny => (2, "Failure", 2, "Blocked", 3),
        Outcome::Error => (0, "Unknown", 0, "Unknown", 2),
    };
    let actor = e.actor();
    let user = |id: &str, name: Option<&str>, kind: Option<&str>| {
        let mut u = Map::new();
        u.insert("uid".to_owned(), json!(id));
        u.insert("name".to_owned(), json!(name.unwrap_or(id)));
        if let Some(kind) = kind {
            u.insert("type".to_owned(), json!(kind));
        }
        Value::Object(u)
    };
    let actor_kind = match actor.kind {
        stele_core::event::ActorType::User => "User",
        stele_core::event::ActorType::Service => "Service",
        stele_core::event::ActorType::System => "System",
    };
    let actor_user = user(&actor.id, actor.name.as_deref(), Some(actor_kind));
    let mut actor_obj = Map::new();
    actor_obj.insert("user".to_owned(), actor_user.clone());
    if let Some(session) = &actor.session_id {
        actor_obj.insert("session".to_owned(), json!({"uid": session}));
    }
    if let Some(app) = e.source() {
        actor_obj.insert("app_name".to_owned(), json!(app));
    }
    let resource = e.resource();
    let mut out = Map::new();
    let mut put = |k: &str, v: Value| {
        out.insert(k.to_owned(), v);
    };
    put("activity_id", json!(activity_id));
    put("activity_name", json!(activity_name));
    put("category_uid", json!(category_uid));
    put("category_name", json!(category_name));
    put("class_uid", json!(class.uid()));
    put("class_name", json!(class.name()));
    put(
        "type_uid",
        json!(u64::from(class.uid()) * 100 + u64::from(activity_id)),
    );
    put(
        "type_name",
        json!(format!("{}: {activity_name}", class.name())),
    );
    put("severity_id", json!(severity_id));
    put(
        "time",
        json!(stored.time.unix_nanos().div_euclid(1_000_000)),
    );
    put("status_id", json!(status_id));
    put("status", json!(status));
    put("disposition_id", json!(disposition_id));
    put("disposition", json!(disposition));
    if let Some(reason) = e.reason() {
        put("status_detail", json!(reason));
    }
    put(
        "message",
        json!(e.reason().map_or_else(
            || format!(
                "{} {} {} {}: {}",
                actor.id,
                e.action(),
                resource.kind,
                resource.id,
                e.outcome()
            ),
            str::to_owned
        )),
    );
    let mut metadata = Map::new();
    metadata.insert("version".to_owned(), json!(OCSF_VERSION));
    metadata.insert(
        "product".to_owned(),
        json!({"name": "Stele", "vendor_name": "Stele"}),
    );
    metadata.insert("uid".to_owned(), json!(stored.id.to_string()));
    metadata.insert(
        "logged_time".to_owned(),
        json!(stored.time.unix_nanos().div_euclid(1_000_000)),
    );
    if let Some(source) = e.source() {
        metadata.insert("log_name".to_owned(), json!(source));
    }
    if let Some(client_time) = e.client_time() {
        metadata.insert("original_time".to_owned(), json!(client_time));
    }
    if let Some(tenant) = e.tenant() {
        metadata.insert("tenant_uid".to_owned(), json!(tenant));
    }
    put("metadata", Value::Object(metadata));
    if let Some(policy) = e.policy() {
        let mut p = Map::new();
        p.insert("uid".to_owned(), json!(policy.id));
        p.insert("name".to_owned(), json!(policy.id));
        if let Some(v) = &policy.version {
            p.insert("version".to_owned(), json!(v));
        }
        put("policy", Value::Object(p));
    }
    let mut endpoint = Map::new();
    if let Some(ip) = &actor.ip {
        endpoint.insert("ip".to_owned(), json!(ip));
    }
    let resource_obj = {
        let mut r = Map::new();
        r.insert("uid".to_owned(), json!(resource.id));
        r.insert("type".to_owned(), json!(resource.kind));
        r.insert(
            "name".to_owned(),
            json!(resource.name.as_deref().unwrap_or(&resource.id)),
        );
        Value::Object(r)
    };
    match class {
        Class::ApiActivity => {
            put("actor", Value::Object(actor_obj));
            let mut api = Map::new();
            api.insert("operation".to_owned(), json!(e.action()));
            if let Some(source) = e.source() {
                api.insert("service".to_owned(), json!({"name": source}));
            }
            put("api", Value::Object(api));
            if let Some(ua) = &actor.user_agent {
                endpoint.insert("svc_name".to_owned(), json!(ua));
            }
            put("src_endpoint", Value::Object(endpoint));
            put("resources", json!([resource_obj]));
        }
        Class::AuthorizeSession | Class::AccountChange => {
            // The account acted on, or granted to: `change.subject`/`change.user` when the
            // change names one, else the resource for account changes, else the actor.
            let subject = e.change().and_then(|c| {
                ["subject", "user", "user_id"]
                    .iter()
                    .find_map(|k| c.get(*k).and_then(Value::as_str))
            });
            let target = match (subject, class) {
                (Some(s), _) => user(s, None, None),
                (None, Class::AccountChange) => user(&resource.id, resource.name.as_deref(), None),
                (None, _) => actor_user,
            };
            put("user", target);
            put("actor", Value::Object(actor_obj));
            if !endpoint.is_empty() {
                put("src_endpoint", Value::Object(endpoint));
            }
            if class == Class::AuthorizeSession {
                match activity_id {
                    3 => put(
                        "iam_roles",
                        json!([{"name": resource.id, "uid": resource.id}]),
                    ),
                    2 => put("group", json!({"name": resource.id, "uid": resource.id})),
                    _ => put("privileges", json!([resource.id])),
                }
                if let Some(session) = &actor.session_id {
                    put("session", json!({"uid": session}));
                }
            }
        }
    }
    let raw = match e.original() {
        Some(original) => original.to_owned(),
        None => String::from_utf8_lossy(entry).into_owned(),
    };
    put("raw_data", json!(raw));
    let mut unmapped = Map::new();
    if let Some(c) = e.context() {
        unmapped.insert("context".to_owned(), Value::Object(c.clone()));
    }
    if let Some(c) = e.change() {
        unmapped.insert("change".to_owned(), Value::Object(c.clone()));
    }
    unmapped.insert("resource_type".to_owned(), json!(resource.kind));
    if stored.client_time_skewed {
        unmapped.insert("client_time_skewed".to_owned(), json!(true));
    }
    put("unmapped", Value::Object(unmapped));
    Value::Object(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn classes_by_action() {
        assert_eq!(classify("user.deactivate", "user").0, Class::AccountChange);
        assert_eq!(classify("user.deactivate", "user").1, 5);
        assert_eq!(classify("account.password-reset", "account").1, 4);
        assert_eq!(
            classify("role.grant", "role"),
            (Class::AuthorizeSession, 3, "Assign Roles".to_owned())
        );
        assert_eq!(classify("group.add", "group").1, 2);
        assert_eq!(
            classify("k8s.get", "pods"),
            (Class::ApiActivity, 2, "Read".to_owned())
        );
        assert_eq!(classify("k8s.deletecollection", "pods").1, 4);
        assert_eq!(classify("opa.decision", "opa.path").1, 2);
        assert_eq!(
            classify("auth.login", "app"),
            (Class::ApiActivity, 99, "auth.login".to_owned())
        );
    }
}
