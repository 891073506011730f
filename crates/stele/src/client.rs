//! A small blocking client of the Stele HTTP API, shared by the client-side subcommands.
//!
//! Error answers become [`Failure::Http`] (exit 1) carrying the server's JSON error; failing to
//! reach the server at all is an environment problem (exit 2).
//!
//! Every request carries `Authorization: Bearer <token>` when a token was given (the global
//! `--token` option or `STELE_TOKEN`, set once by `main` through [`set_token`]).
//!
//! For `https://` servers, `--ca FILE` trusts the PEM CA certificate(s) in FILE *instead of*
//! the public roots (a private CA, as curl's `--cacert`), and `--client-cert FILE
//! --client-key FILE` present a client certificate to servers that verify them (mTLS); set
//! once by `main` through [`set_tls`].

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::blocking::{RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use stele_core::checkpoint::{open_checkpoint, Checkpoint};
use stele_core::note::NoteVerifier;
use stele_core::tile::{TileKind, TilePath, TILE_WIDTH};
use stele_core::Hash;

use crate::exit::Failure;

/// Default server URL (the default `stele serve --listen`).
pub const DEFAULT_URL: &str = "http://127.0.0.1:7407";

/// The answer of `GET /v1/proofs/inclusion`.
#[derive(Debug, Deserialize)]
pub struct InclusionProof {
    /// Log index of the entry.
    pub index: u64,
    /// Tree size the proof is for.
    pub tree_size: u64,
    /// The entry's leaf hash, as the server claims it.
    pub leaf_hash: Hash,
    /// The audit path.
    pub hashes: Vec<Hash>,
}

/// The answer of `GET /v1/proofs/consistency`.
#[derive(Debug, Deserialize)]
pub struct ConsistencyProof {
    /// Older size.
    pub from: u64,
    /// Newer size.
    pub to: u64,
    /// The proof.
    pub hashes: Vec<Hash>,
}

/// The API token every [`Client`] sends, if any.
static TOKEN: OnceLock<Option<String>> = OnceLock::new();

/// Sets the API token for every client this process makes. Only the first call counts.
pub fn set_token(token: Option<String>) {
    let _ = TOKEN.set(token.filter(|t| !t.trim().is_empty()));
}

/// TLS settings of the clients this process makes.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// PEM CA certificate(s) to trust instead of the public roots.
    pub ca: Option<PathBuf>,
    /// PEM client certificate (chain) for mTLS.
    pub client_cert: Option<PathBuf>,
    /// The PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
}

/// The TLS settings every [`Client`] uses.
static TLS: OnceLock<TlsOptions> = OnceLock::new();

/// Sets the TLS settings for every client this process makes. Only the first call counts.
///
/// # Errors
/// A client certificate without its key, or a key without its certificate.
pub fn set_tls(options: TlsOptions) -> Result<()> {
    anyhow::ensure!(
        options.client_cert.is_some() == options.client_key.is_some(),
        "--client-cert and --client-key go together"
    );
    let _ = TLS.set(options);
    Ok(())
}

fn read_pem(what: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading the {what} {}", path.display()))
}

/// Applies the TLS settings to a client builder. Messages name the files, never a key.
///
/// # Errors
/// Unreadable files, or files that are not the PEM they should be.
pub fn with_tls(
    mut builder: reqwest::blocking::ClientBuilder,
) -> Result<reqwest::blocking::ClientBuilder> {
    let Some(tls) = TLS.get() else {
        return Ok(builder);
    };
    if let Some(ca) = &tls.ca {
        let certs = reqwest::Certificate::from_pem_bundle(&read_pem("CA certificate", ca)?)
            .ok()
            .filter(|c| !c.is_empty())
            .with_context(|| {
                format!(
                    "--ca {}: no PEM CERTIFICATE block could be read",
                    ca.display()
                )
            })?;
        builder = builder.tls_built_in_root_certs(false);
        for c in certs {
            builder = builder.add_root_certificate(c);
        }
    }
    if let (Some(cert), Some(key)) = (&tls.client_cert, &tls.client_key) {
        let mut pem = read_pem("client private key", key)?;
        pem.push(b'\n');
        pem.extend(read_pem("client certificate", cert)?);
        // reqwest's error names no key material.
        let identity = reqwest::Identity::from_pem(&pem).map_err(|_| {
            anyhow::anyhow!(
                "--client-cert {} / --client-key {}: not a PEM certificate and a PEM private key (PKCS#8, PKCS#1 or SEC1)",
                cert.display(),
                key.display()
            )
        })?;
        builder = builder.identity(identity);
    }
    Ok(builder)
}

/// The `Authorization` header for the configured token, marked sensitive so it is never
/// printed in debug output.
fn auth_headers() -> Result<reqwest::header::HeaderMap> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(Some(token)) = TOKEN.get() {
        // The message must not echo the token.
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .map_err(|_| {
                anyhow::anyhow!("--token / STELE_TOKEN holds characters a header cannot carry")
            })?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(headers)
}

/// A client bound to one server's base URL.
pub struct Client {
    http: reqwest::blocking::Client,
    base: String,
}

impl Client {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:7407`).
    ///
    /// # Errors
    /// When `base` is not an http(s) URL.
    pub fn new(base: &str) -> Result<Client> {
        let url =
            reqwest::Url::parse(base).with_context(|| format!("--url {base:?} is not a URL"))?;
        anyhow::ensure!(
            matches!(url.scheme(), "http" | "https"),
            "--url {base:?} must be an http:// or https:// URL"
        );
        let http = with_tls(
            reqwest::blocking::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(300))
                .user_agent(concat!("stele/", env!("CARGO_PKG_VERSION")))
                .default_headers(auth_headers()?),
        )?
        .build()
        .context("building the HTTP client")?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    /// The absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A POST request to `path`, to be sent with [`Client::send`].
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.http.post(self.url(path))
    }

    /// A DELETE request to `path`, to be sent with [`Client::send`].
    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.http.delete(self.url(path))
    }

    /// Sends a request; any answer (success or not) is returned.
    ///
    /// # Errors
    /// When the server cannot be reached or the connection fails.
    pub fn send(&self, req: RequestBuilder) -> Result<Response> {
        let req = req.build().context("building the request")?;
        let target = format!("{} {}", req.method(), req.url());
        self.http
            .execute(req)
            .with_context(|| format!("{target}: cannot reach the server"))
    }

    /// GETs `path` and returns the successful answer.
    ///
    /// # Errors
    /// [`Failure::Http`] for an error status; connection errors.
    pub fn get(&self, path: &str) -> Result<Response> {
        let resp = self.send(self.http.get(self.url(path)))?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(http_failure("GET", resp).into())
        }
    }

    /// GETs `path` and returns the body.
    ///
    /// # Errors
    /// As [`Client::get`], and a body that breaks off.
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        let url = self.url(path);
        Ok(self
            .get(path)?
            .bytes()
            .with_context(|| format!("GET {url}: reading the answer"))?
            .to_vec())
    }

    /// GETs `path`; `None` when the server answers 404 (for resources a log MAY drop, such as
    /// partial tiles once the full tile exists).
    ///
    /// # Errors
    /// As [`Client::get_bytes`] for every status but 404.
    pub fn get_bytes_if_found(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let url = self.url(path);
        let resp = self.send(self.http.get(&url))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(http_failure("GET", resp).into());
        }
        Ok(Some(
            resp.bytes()
                .with_context(|| format!("GET {url}: reading the answer"))?
                .to_vec(),
        ))
    }

    /// GETs `path` and parses the body as JSON of type `T`.
    ///
    /// # Errors
    /// As [`Client::get_bytes`], and [`Failure::Verification`] for an answer not of the form
    /// the API promises.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let body = self.get_bytes(path)?;
        serde_json::from_slice(&body).map_err(|e| {
            Failure::verification(format!("GET {}: malformed answer: {e}", self.url(path))).into()
        })
    }

    /// Fetches `/checkpoint` and opens it with `verifier`: signature, and origin = key name.
    /// Returns the checkpoint and the signed note as served.
    ///
    /// # Errors
    /// [`Failure::Verification`] if the note is malformed or not signed by `verifier`.
    pub fn checkpoint(&self, verifier: &NoteVerifier) -> Result<(Checkpoint, String)> {
        let note = self.get_bytes("/checkpoint")?;
        let (cp, _) = open_checkpoint(&note, verifier).map_err(|e| {
            Failure::verification(format!(
                "the checkpoint at {} does not verify with key {}: {e}",
                self.url("/checkpoint"),
                verifier.to_verifier_key()
            ))
        })?;
        let note = String::from_utf8(note)
            .map_err(|_| Failure::verification("the checkpoint is not UTF-8"))?;
        Ok((cp, note))
    }

    /// Fetches tile `index` of `kind` holding `width` (1..=256) items. A partial tile the log
    /// no longer serves is read as the prefix of the full tile (tlog-tiles lets logs drop
    /// partial tiles once the full one exists); the caller reads only the first `width` items.
    ///
    /// # Errors
    /// [`Failure::Verification`] if a full tile is missing (404); HTTP and connection errors.
    pub fn tile(&self, kind: TileKind, index: u64, width: u64) -> Result<Vec<u8>> {
        let partial = (width < TILE_WIDTH)
            .then(|| u16::try_from(width))
            .transpose()
            .context("tile width")?;
        let path = TilePath::new(kind, index, partial).context("tile path")?;
        if let Some(data) = self.get_bytes_if_found(&format!("/{path}"))? {
            return Ok(data);
        }
        if partial.is_none() {
            return Err(Failure::verification(format!(
                "{} is missing (404) though the checkpoint covers it",
                self.url(&format!("/{path}"))
            ))
            .into());
        }
        let full = TilePath::new(kind, index, None).context("tile path")?;
        self.get_bytes(&format!("/{full}"))
            .with_context(|| format!("/{path} is gone (404), and so is the full tile"))
    }
}

/// Turns an error answer into a [`Failure::Http`], keeping the server's (JSON) body.
pub fn http_failure(method: &'static str, resp: Response) -> Failure {
    let status = resp.status().as_u16();
    let url = resp.url().to_string();
    let mut body = resp.text().unwrap_or_default().trim().to_string();
    if status == 401 && !matches!(TOKEN.get(), Some(Some(_))) {
        body.push_str(" (no token was sent: pass --token or set STELE_TOKEN)");
    }
    Failure::Http {
        method,
        url,
        status,
        body,
    }
}
