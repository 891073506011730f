//! Authentication, authorization, rate limits and the audited-read meta-log.
//!
//! With authentication on (what `stele serve` does unless `--no-auth`), every request passes
//! through the middleware (`middleware::enforce`):
//!
//! 1. The route's rule ([`routes::rule_for`]) decides whether it is public, and if not which
//!    roles may use it. Public routes are served to anyone.
//! 2. `Authorization: Bearer <token>` is checked against the token file (reloaded as soon as
//!    another process, such as the offline CLI, changes it): 401 with `WWW-Authenticate:
//!    Bearer` if missing, malformed, unknown, expired or revoked.
//! 3. The principal's rate limit: 429 with `Retry-After`.
//! 4. The role: 403 naming the roles the route needs.
//! 5. The handler runs with the [`Caller`]; handlers apply what depends on the data (a
//!    writer's source and tenant binding, a reader's tenants).
//! 6. For audited routes (event reads, proofs, entry bundles, admin actions) an event naming
//!    the principal, the request and the number of entries returned is appended to the log
//!    *before* the answer is sent; if the log refuses it, the answer is 503 and nothing is
//!    disclosed. Failed authentications and authorizations are logged as `auth.failure`,
//!    at most a few per second (the rest are counted in the next one logged).
//!
//! With authentication off ([`Caller::Open`]) nothing is checked and nothing is meta-logged:
//! there is no principal to name. Writes still may not claim the meta-log's source.

pub mod admin;
pub(crate) mod meta;
pub(crate) mod middleware;
pub mod routes;
pub(crate) mod tokens;

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use stele_auth::{AuthError, Principal, TokenStore};
use stele_core::event::EventLimits;
use stele_store::Store;

use crate::error::ApiError;

pub use meta::{
    AUDIT_EXPORT, AUDIT_PROOF, AUDIT_QUERY, AUDIT_READ, AUTH_FAILURE, TOKEN_CREATE, TOKEN_LIST,
    TOKEN_REVOKE,
};

/// Access settings of a server with authentication on.
#[derive(Clone, Debug, Default)]
pub struct AuthSettings {
    /// Serve `/checkpoint`, hash tiles and `/v1/log` to anyone. Off: readers and auditors
    /// only (auditors only with [`AuthSettings::auditor_only_verification`]). Entry bundles
    /// (`/tile/entries/…`) hold every tenant's events and are always for auditors only.
    pub public_verification: bool,
    /// Serve `/checkpoint`, hash tiles, `/v1/log` and `/v1/key/rotations` to auditors only
    /// (readers then verify their proofs against the checkpoint that inclusion proofs at the
    /// latest checkpoint's size carry). Ignored with `public_verification`.
    pub auditor_only_verification: bool,
    /// Serve `/metrics` to anyone. Off: auditors and admins only.
    pub public_metrics: bool,
    /// Requests per second each principal may make, with bursts of twice that; `None`:
    /// unlimited.
    pub rate_limit: Option<NonZeroU32>,
}

impl AuthSettings {
    /// The default per-principal rate: above what one gateway sending an event per request
    /// needs (the single-event HTTP bench reaches about 25 000 requests per second on a
    /// 2-core machine, shared by all clients), so it stops a runaway client from taking the
    /// whole server without throttling honest ones.
    pub const DEFAULT_RATE_LIMIT: u32 = 10_000;
}

/// Who sent a request, as the handlers see it.
#[derive(Clone, Debug)]
pub enum Caller {
    /// Authentication is off: everything is allowed and nothing is attributed.
    Open,
    /// A public route, reached with or without credentials (they are not checked).
    Anonymous,
    /// An authenticated principal whose role the route allows.
    Principal(Arc<Principal>),
}

impl Caller {
    /// The principal, if authenticated.
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Caller::Principal(p) => Some(p),
            Caller::Open | Caller::Anonymous => None,
        }
    }

    /// Whether the caller may see an entry of tenant `tenant`: everything when authentication
    /// is off, nothing anonymously, else by role and tenants
    /// ([`stele_auth::policy::may_see`]).
    pub fn may_see(&self, tenant: Option<&str>) -> bool {
        match self {
            Caller::Open => true,
            Caller::Anonymous => false,
            Caller::Principal(p) => stele_auth::policy::may_see(p, tenant),
        }
    }

    /// Whether what the caller may see depends on the tenant of each entry (a reader).
    pub fn is_tenant_bound(&self) -> bool {
        matches!(self, Caller::Principal(p) if p.role == stele_auth::Role::Reader)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    /// The caller the middleware determined. Fails closed: a request that did not pass
    /// through the middleware is refused with 500.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::Internal("the request bypassed the access middleware".to_owned())
        })
    }
}

/// What a handler of an audited route reports for the meta-log, as a response extension.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Returned {
    /// How many entries the answer discloses (an event read: 1; an entry bundle: its width;
    /// an inclusion proof: 1, the entry it proves).
    pub entries: u64,
    /// The log index concerned, when there is one.
    pub index: Option<u64>,
    /// The answer is "not found" because the entry belongs to a tenant the reader may not
    /// see (recorded for auditors; the reader's answer is the same as for a missing entry).
    pub withheld: bool,
}

type KeyedLimiter = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>;

/// Authentication state of a server: the token table, the settings, the rate limiters and
/// the meta-log writer. Cheap to clone.
#[derive(Clone)]
pub struct Auth(Arc<AuthInner>);

struct AuthInner {
    tokens: tokens::TokenTable,
    settings: AuthSettings,
    limiter: Option<KeyedLimiter>,
    clock: DefaultClock,
    meta: meta::MetaLog,
}

impl Auth {
    /// Authentication over the tokens of data directory `data`, writing meta-log events to
    /// `store` under `limits`.
    ///
    /// # Errors
    /// The token file cannot be read.
    pub fn open(
        data: &Path,
        store: Store,
        limits: EventLimits,
        settings: AuthSettings,
    ) -> Result<Auth, AuthError> {
        let tokens = tokens::TokenTable::open(TokenStore::new(data))?;
        let clock = DefaultClock::default();
        let limiter = settings.rate_limit.map(|rate| {
            let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
            RateLimiter::new(
                Quota::per_second(rate).allow_burst(burst),
                DefaultKeyedStateStore::default(),
                clock.clone(),
            )
        });
        Ok(Auth(Arc::new(AuthInner {
            tokens,
            settings,
            limiter,
            clock,
            meta: meta::MetaLog::new(store, limits),
        })))
    }

    /// The settings.
    pub fn settings(&self) -> &AuthSettings {
        &self.0.settings
    }

    /// The token file.
    pub fn token_store(&self) -> &TokenStore {
        self.0.tokens.store()
    }

    /// Records in the log the creation and revocation of every token in the token file, as
    /// `admin.token.create` and `admin.token.revoke` events with ids derived from the token,
    /// so each is in the log once however often this runs. Catches up on changes made while
    /// the server was down (`stele token` on the data directory); the server also runs it
    /// whenever it notices the file changed.
    ///
    /// Returns how many events were new.
    ///
    /// # Errors
    /// The token file cannot be read, or the log refuses the events.
    pub async fn record_token_history(&self) -> Result<usize, ApiError> {
        let snapshot = self.0.tokens.snapshot().map_err(tokens::unavailable)?;
        self.0.meta.token_history(&snapshot).await
    }
}
