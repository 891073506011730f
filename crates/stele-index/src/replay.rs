//! Point-in-time replay: the grants in force at any instant, folded from the log's
//! permission-change events (conventions in `docs/query.md`, "Replay").
//!
//! `policy.update` events that define a role's permissions (`change: {role, permissions}`)
//! are folded the same way, so a replay lists, with each role held, the permissions the role
//! gave at that instant and the entry that defined them.
//!
//! Every change event with outcome `allow` is kept, in log order, in memory (they are a small
//! fraction of an audit log; each sealed chunk file also stores its own, so reopening does
//! not re-read the log). A replay folds the changes of the principals and roles involved up
//! to the requested instant.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use stele_core::timestamp::Timestamp;
use stele_core::Hash;

/// The kinds of permission change replay understands, by action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// `role.grant`: `change: {principal, role, scope?}`.
    Grant,
    /// `role.revoke`: `change: {principal, role, scope?}`.
    Revoke,
    /// `user.deactivate`: `change: {principal}`.
    Deactivate,
    /// `user.activate`: `change: {principal}`.
    Activate,
    /// `group.add`: `change: {principal, group}` makes the principal a member.
    GroupAdd,
    /// `group.remove`: `change: {principal, group}`.
    GroupRemove,
    /// `policy.update`: `change: {role, permissions: [..]}` sets the role's permissions,
    /// replacing what an earlier `policy.update` of the role set.
    Permissions,
}

impl ChangeKind {
    /// The kind of change an event with `action` makes, if any.
    pub fn of_action(action: &str) -> Option<ChangeKind> {
        Some(match action {
            "role.grant" => ChangeKind::Grant,
            "role.revoke" => ChangeKind::Revoke,
            "user.deactivate" => ChangeKind::Deactivate,
            "user.activate" => ChangeKind::Activate,
            "group.add" => ChangeKind::GroupAdd,
            "group.remove" => ChangeKind::GroupRemove,
            "policy.update" => ChangeKind::Permissions,
            _ => return None,
        })
    }
}

/// Where a grant applies: `{"type", "id"}`; a grant without a scope applies everywhere.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Scope {
    /// Scope type, such as `tenant` or `project`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Scope id.
    pub id: String,
}

/// One permission change, as replay needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// Log index of the event.
    pub index: u64,
    /// Its commit time, ns since the epoch.
    pub time: i64,
    /// What it does.
    pub kind: ChangeKind,
    /// `change.principal` (empty for `policy.update`, which names a role, not a principal).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub principal: String,
    /// `change.role` (grants and revocations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// `change.scope` (grants and revocations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// `change.group` (membership changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `change.permissions` (`policy.update`): the role's permissions from this entry on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
}

impl ChangeRecord {
    /// Reads the `change` object of an event of kind `kind`. `None` when it lacks what the
    /// convention requires (such an event changes nothing).
    pub(crate) fn parse(kind: ChangeKind, index: u64, time: i64, change: &str) -> Option<Self> {
        let change: Value = serde_json::from_str(change).ok()?;
        let text = |key: &str| change.get(key)?.as_str().map(str::to_owned);
        if kind == ChangeKind::Permissions {
            // Every permission must be a string; sorted and deduplicated, as a set.
            let mut permissions = change
                .get("permissions")?
                .as_array()?
                .iter()
                .map(|p| p.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()?;
            permissions.sort_unstable();
            permissions.dedup();
            return Some(ChangeRecord {
                index,
                time,
                kind,
                principal: String::new(),
                role: Some(text("role")?),
                scope: None,
                group: None,
                permissions: Some(permissions),
            });
        }
        let principal = text("principal")?;
        let (mut role, mut scope, mut group) = (None, None, None);
        match kind {
            ChangeKind::Grant | ChangeKind::Revoke => {
                role = Some(text("role")?);
                scope = match change.get("scope") {
                    None => None,
                    Some(s) => Some(Scope {
                        kind: s.get("type")?.as_str()?.to_owned(),
                        id: s.get("id")?.as_str()?.to_owned(),
                    }),
                };
            }
            ChangeKind::GroupAdd | ChangeKind::GroupRemove => group = Some(text("group")?),
            ChangeKind::Deactivate | ChangeKind::Activate | ChangeKind::Permissions => {}
        }
        Some(ChangeRecord {
            index,
            time,
            kind,
            principal,
            role,
            scope,
            group,
            permissions: None,
        })
    }
}

/// Every change record of the indexed log, in log order, with lookups by principal, role and
/// group.
#[derive(Default)]
pub(crate) struct ReplayLog {
    records: Vec<ChangeRecord>,
    by_principal: HashMap<String, Vec<usize>>,
    by_role: HashMap<String, Vec<usize>>,
    by_group: HashMap<String, Vec<usize>>,
}

/// How a principal holds a role through a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Via {
    /// The group that holds the role.
    pub group: String,
    /// Log index of the `group.add` event that made the principal a member.
    pub index: u64,
}

/// A grant in force at the replayed instant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// The principal holding it (in answers by role).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The role.
    pub role: String,
    /// Where it applies (`null`: everywhere).
    pub scope: Option<Scope>,
    /// When the establishing `role.grant` was committed.
    pub granted_at: Timestamp,
    /// Log index of the establishing `role.grant`.
    pub index: u64,
    /// Leaf hash of that entry.
    pub leaf_hash: Hash,
    /// Set when the principal holds the role as a member of a group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
    /// The permissions the role gave at the replayed instant, when a `policy.update` had
    /// defined them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<RolePermissions>,
    /// Inclusion proof of the establishing entry, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inclusion_proof: Option<Vec<Hash>>,
}

/// A role's permissions at the replayed instant, with the `policy.update` that defined them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RolePermissions {
    /// The permissions, sorted.
    pub set: Vec<String>,
    /// When the defining `policy.update` was committed.
    pub defined_at: Timestamp,
    /// Log index of that entry.
    pub index: u64,
    /// Leaf hash of that entry.
    pub leaf_hash: Hash,
    /// Inclusion proof of that entry, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inclusion_proof: Option<Vec<Hash>>,
}

/// Answer of a replay by principal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PrincipalReplay {
    /// The principal.
    pub principal: String,
    /// The instant replayed.
    pub as_of: Timestamp,
    /// False when the principal was deactivated at that instant: its grants are then listed
    /// but none is in force.
    pub active: bool,
    /// The grants, sorted by role, scope and group.
    pub roles: Vec<Grant>,
}

/// Answer of a replay by role: who held it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RoleReplay {
    /// The role.
    pub role: String,
    /// The instant replayed.
    pub as_of: Timestamp,
    /// The principals that held the role in force (active), sorted by principal and scope.
    pub principals: Vec<Grant>,
}

/// Answer of a replay by permission: who held a role giving it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PermissionReplay {
    /// The permission.
    pub permission: String,
    /// The instant replayed.
    pub as_of: Timestamp,
    /// The principals that held, in force, a role whose permissions included it; sorted by
    /// principal, role and scope.
    pub principals: Vec<Grant>,
}

/// Which scopes a replay by role asks about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeFilter {
    /// Only grants of this scope type (and grants without a scope, which apply everywhere).
    pub kind: Option<String>,
    /// Only grants of this scope id (requires `kind`).
    pub id: Option<String>,
}

impl ScopeFilter {
    fn admits(&self, scope: Option<&Scope>) -> bool {
        match scope {
            None => true,
            Some(s) => {
                self.kind.as_ref().is_none_or(|k| *k == s.kind)
                    && self.id.as_ref().is_none_or(|i| *i == s.id)
            }
        }
    }
}

/// A grant before leaf hashes are looked up.
#[derive(Clone, Debug)]
pub(crate) struct RawGrant {
    pub principal: String,
    pub role: String,
    pub scope: Option<Scope>,
    pub time: i64,
    pub index: u64,
    pub via: Option<Via>,
    /// The role's permissions then: (set, time, index) of the defining `policy.update`.
    pub permissions: Option<(Vec<String>, i64, u64)>,
}

impl ReplayLog {
    /// Adds a record; records arrive in log order.
    pub fn push(&mut self, r: ChangeRecord) {
        let at = self.records.len();
        if r.kind != ChangeKind::Permissions {
            self.by_principal
                .entry(r.principal.clone())
                .or_default()
                .push(at);
        }
        if let Some(role) = &r.role {
            self.by_role.entry(role.clone()).or_default().push(at);
        }
        if let Some(group) = &r.group {
            self.by_group.entry(group.clone()).or_default().push(at);
        }
        self.records.push(r);
    }

    /// Records of `positions` in force at time `t` within the first `size` entries.
    fn upto<'a>(
        &'a self,
        positions: Option<&'a Vec<usize>>,
        t: i64,
        size: u64,
    ) -> impl Iterator<Item = &'a ChangeRecord> + 'a {
        positions
            .into_iter()
            .flatten()
            .filter_map(|&p| self.records.get(p))
            .take_while(move |r| r.time <= t && r.index < size)
    }

    /// Whether `principal` was active at `t`.
    fn active(&self, principal: &str, t: i64, size: u64) -> bool {
        let mut active = true;
        for r in self.upto(self.by_principal.get(principal), t, size) {
            match r.kind {
                ChangeKind::Deactivate => active = false,
                ChangeKind::Activate => active = true,
                _ => {}
            }
        }
        active
    }

    /// The direct grants of `principal` at `t`: (role, scope) → establishing record.
    fn direct(
        &self,
        principal: &str,
        t: i64,
        size: u64,
    ) -> BTreeMap<(String, Option<Scope>), &ChangeRecord> {
        let mut held = BTreeMap::new();
        for r in self.upto(self.by_principal.get(principal), t, size) {
            let Some(role) = &r.role else { continue };
            let key = (role.clone(), r.scope.clone());
            match r.kind {
                ChangeKind::Grant => {
                    held.entry(key).or_insert(r);
                }
                ChangeKind::Revoke => {
                    held.remove(&key);
                }
                _ => {}
            }
        }
        held
    }

    /// The groups `principal` belonged to at `t`: group → establishing `group.add`.
    fn groups_of(&self, principal: &str, t: i64, size: u64) -> BTreeMap<String, u64> {
        let mut groups = BTreeMap::new();
        for r in self.upto(self.by_principal.get(principal), t, size) {
            let Some(group) = &r.group else { continue };
            match r.kind {
                ChangeKind::GroupAdd => {
                    groups.entry(group.clone()).or_insert(r.index);
                }
                ChangeKind::GroupRemove => {
                    groups.remove(group);
                }
                _ => {}
            }
        }
        groups
    }

    /// The members of `group` at `t`: member → establishing `group.add`.
    fn members_of(&self, group: &str, t: i64, size: u64) -> BTreeMap<String, u64> {
        let mut members = BTreeMap::new();
        for r in self.upto(self.by_group.get(group), t, size) {
            match r.kind {
                ChangeKind::GroupAdd => {
                    members.entry(r.principal.clone()).or_insert(r.index);
                }
                ChangeKind::GroupRemove => {
                    members.remove(&r.principal);
                }
                _ => {}
            }
        }
        members
    }

    /// The permissions `role` gave at `t`: the last `policy.update` of it, if any.
    fn permissions_of(&self, role: &str, t: i64, size: u64) -> Option<(Vec<String>, i64, u64)> {
        self.upto(self.by_role.get(role), t, size)
            .filter(|r| r.kind == ChangeKind::Permissions)
            .last()
            .and_then(|r| Some((r.permissions.clone()?, r.time, r.index)))
    }

    /// Fills in each grant's role permissions at `t`.
    fn with_permissions(&self, mut grants: Vec<RawGrant>, t: i64, size: u64) -> Vec<RawGrant> {
        for g in &mut grants {
            g.permissions = self.permissions_of(&g.role, t, size);
        }
        grants
    }

    /// Replay by permission: every active principal holding, in a scope `scopes` admits, a
    /// role whose permissions at `t` include `permission` (see [`ReplayLog::role`]).
    pub fn permission(
        &self,
        permission: &str,
        scopes: &ScopeFilter,
        t: i64,
        size: u64,
    ) -> Vec<RawGrant> {
        let roles: Vec<&String> = self
            .by_role
            .keys()
            .filter(|role| {
                self.permissions_of(role, t, size)
                    .is_some_and(|(set, _, _)| {
                        set.binary_search_by(|p| p.as_str().cmp(permission)).is_ok()
                    })
            })
            .collect();
        let mut out: Vec<RawGrant> = roles
            .into_iter()
            .flat_map(|role| self.role(role, scopes, t, size))
            .collect();
        out.sort_by(|a, b| {
            (
                &a.principal,
                &a.role,
                &a.scope,
                a.via.as_ref().map(|v| &v.group),
            )
                .cmp(&(
                    &b.principal,
                    &b.role,
                    &b.scope,
                    b.via.as_ref().map(|v| &v.group),
                ))
        });
        out
    }

    /// Replay by principal: (active, grants) at `t` over the first `size` entries. Grants
    /// held through a group count only while the group itself is active.
    pub fn principal(&self, principal: &str, t: i64, size: u64) -> (bool, Vec<RawGrant>) {
        let active = self.active(principal, t, size);
        let mut out: Vec<RawGrant> = self
            .direct(principal, t, size)
            .into_iter()
            .map(|((role, scope), r)| RawGrant {
                principal: principal.to_owned(),
                role,
                scope,
                time: r.time,
                index: r.index,
                via: None,
                permissions: None,
            })
            .collect();
        for (group, member_index) in self.groups_of(principal, t, size) {
            if !self.active(&group, t, size) {
                continue;
            }
            for ((role, scope), r) in self.direct(&group, t, size) {
                out.push(RawGrant {
                    principal: principal.to_owned(),
                    role,
                    scope,
                    time: r.time,
                    index: r.index,
                    via: Some(Via {
                        group: group.clone(),
                        index: member_index,
                    }),
                    permissions: None,
                });
            }
        }
        out.sort_by(|a, b| {
            (&a.role, &a.scope, a.via.as_ref().map(|v| &v.group)).cmp(&(
                &b.role,
                &b.scope,
                b.via.as_ref().map(|v| &v.group),
            ))
        });
        (active, self.with_permissions(out, t, size))
    }

    /// Replay by role: every active principal holding `role` in a scope `scopes` admits at
    /// `t`, directly or as an active member of an active group that holds it.
    pub fn role(&self, role: &str, scopes: &ScopeFilter, t: i64, size: u64) -> Vec<RawGrant> {
        let mut held: BTreeMap<(String, Option<Scope>), &ChangeRecord> = BTreeMap::new();
        for r in self.upto(self.by_role.get(role), t, size) {
            let key = (r.principal.clone(), r.scope.clone());
            match r.kind {
                ChangeKind::Grant => {
                    held.entry(key).or_insert(r);
                }
                ChangeKind::Revoke => {
                    held.remove(&key);
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        for ((principal, scope), r) in held {
            if !scopes.admits(scope.as_ref()) || !self.active(&principal, t, size) {
                continue;
            }
            for (member, member_index) in self.members_of(&principal, t, size) {
                if self.active(&member, t, size) {
                    out.push(RawGrant {
                        principal: member,
                        role: role.to_owned(),
                        scope: scope.clone(),
                        time: r.time,
                        index: r.index,
                        via: Some(Via {
                            group: principal.clone(),
                            index: member_index,
                        }),
                        permissions: None,
                    });
                }
            }
            out.push(RawGrant {
                principal,
                role: role.to_owned(),
                scope,
                time: r.time,
                index: r.index,
                via: None,
                permissions: None,
            });
        }
        out.sort_by(|a, b| {
            (&a.principal, &a.scope, a.via.as_ref().map(|v| &v.group)).cmp(&(
                &b.principal,
                &b.scope,
                b.via.as_ref().map(|v| &v.group),
            ))
        });
        // One role: its permissions at `t` are the same for every grant.
        let permissions = self.permissions_of(role, t, size);
        for g in &mut out {
            g.permissions.clone_from(&permissions);
        }
        out
    }

    /// Number of change records.
    pub fn len(&self) -> usize {
        self.records.len()
    }
}
