//! The access-control part of `stele serve`: its flags, the first admin token, and turning
//! authentication on (or, with `--no-auth`, saying loudly that it is off).

use std::io::Write;
use std::num::NonZeroU32;
use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use stele_auth::{Token, TokenStore};
use stele_core::event::EventLimits;
use stele_server::auth::{Auth, AuthSettings};
use stele_server::AppState;
use stele_store::Store;

/// Access-control flags of `stele serve`.
#[derive(Debug, Args)]
pub struct AccessArgs {
    /// Serve without authentication: anyone who can reach the port may append and read
    /// every event, and reads are not meta-logged. For development behind a trusted proxy.
    #[arg(long)]
    no_auth: bool,
    /// Serve verification material (/checkpoint, hash tiles, /v1/log) to anyone. Entry
    /// bundles hold every tenant's events and stay auditor-only.
    #[arg(long, conflicts_with = "no_auth")]
    public_verification: bool,
    /// Serve verification material (/checkpoint, hash tiles, /v1/log, /v1/key/rotations) to
    /// auditor tokens only (default: reader and auditor tokens).
    #[arg(long, conflicts_with_all = ["no_auth", "public_verification"])]
    auditor_only_verification: bool,
    /// Serve /metrics to anyone (default: auditor and admin tokens only).
    #[arg(long, conflicts_with = "no_auth")]
    public_metrics: bool,
    /// Requests per second each token may make (bursts of twice that); 0: unlimited.
    #[arg(long, value_name = "N", default_value_t = AuthSettings::DEFAULT_RATE_LIMIT, conflicts_with = "no_auth")]
    rate_limit: u32,
}

/// What [`prepare`] decided, to be applied once the server state exists.
pub struct Prepared {
    settings: Option<AuthSettings>,
    admin_token: Option<Token>,
}

/// Before serving: with authentication on, creates the first admin token if the log never
/// had one (written to `DATA/admin.token`, mode 0600); with `--no-auth`, warns.
///
/// # Errors
/// The token file or `admin.token` cannot be read or written.
pub fn prepare(args: &AccessArgs, dir: &Path) -> Result<Prepared> {
    if args.no_auth {
        tracing::warn!("authentication is OFF (--no-auth)");
        eprintln!(
            "WARNING: authentication is OFF (--no-auth): anyone who can reach this server may \
             append events and read every event of every tenant, and reads are not recorded \
             in the meta-log."
        );
        return Ok(Prepared {
            settings: None,
            admin_token: None,
        });
    }
    let tokens = TokenStore::new(dir);
    let now = stele_core::timestamp::Timestamp::from_unix_nanos(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_nanos()).ok())
            .context("the system clock is outside 1970..2262")?,
    );
    let admin_token = tokens
        .bootstrap_admin(now)
        .with_context(|| format!("creating the first admin token in {}", dir.display()))?;
    Ok(Prepared {
        settings: Some(AuthSettings {
            public_verification: args.public_verification,
            auditor_only_verification: args.auditor_only_verification,
            public_metrics: args.public_metrics,
            rate_limit: NonZeroU32::new(args.rate_limit),
        }),
        admin_token,
    })
}

impl Prepared {
    /// Prints the first admin token, the one time it is shown.
    ///
    /// # Errors
    /// Writing to `out` fails.
    pub fn announce(&self, out: &mut impl Write, dir: &Path) -> Result<()> {
        if let Some(token) = &self.admin_token {
            writeln!(out, "admin token: {}", token.expose())?;
            eprintln!(
                "created the first admin token {}: printed above only this once, and stored in {} (mode 0600)",
                token.id(),
                TokenStore::new(dir).admin_token_path().display()
            );
        }
        if let Some(s) = &self.settings {
            tracing::info!(
                public_verification = s.public_verification,
                auditor_only_verification = s.auditor_only_verification,
                public_metrics = s.public_metrics,
                rate_limit = s.rate_limit.map(NonZeroU32::get),
                "authentication is on"
            );
        }
        Ok(())
    }

    /// Turns authentication on for `state` and records in the log every token created or
    /// revoked since it last ran (the first admin token, offline `stele token` changes).
    ///
    /// # Errors
    /// The token file cannot be read, or the log refuses the records.
    pub async fn enable(
        self,
        dir: &Path,
        state: &AppState,
        store: &Store,
        limits: EventLimits,
    ) -> Result<()> {
        let Some(settings) = self.settings else {
            return Ok(());
        };
        let auth = Auth::open(dir, store.clone(), limits, settings)
            .with_context(|| format!("reading the tokens of {}", dir.display()))?;
        let recorded = auth
            .record_token_history()
            .await
            .context("recording token changes in the log")?;
        if recorded > 0 {
            tracing::info!(events = recorded, "recorded token changes in the meta-log");
        }
        if state.enable_auth(auth).is_err() {
            anyhow::bail!("authentication was already enabled");
        }
        Ok(())
    }
}
