//! HTTPS with rustls, and client-certificate verification (mTLS).
//!
//! [`load_server_config`] reads a PEM certificate chain and its private key (and, for mTLS, the
//! PEM certificates of the CA(s) that issue client certificates) and checks them before the
//! server starts: unreadable files, files without the expected PEM blocks, and a key that is
//! not the certificate's are each a precise [`TlsError`]. [`serve_tls`] accepts connections,
//! completes the handshake, and hands each request the verified client certificate's
//! fingerprint ([`PeerCertificate`]) for the access middleware to map to a principal.
//!
//! With a client CA, a client that presents a certificate must present one that chains to it
//! (otherwise the handshake fails); a client may present none (unless `require_client_cert`),
//! and then authenticates with a bearer token as over plain HTTP — public routes stay public.
//!
//! Errors name files, never their contents: a private key is never printed.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use stele_auth::CertFingerprint;
use tower::ServiceExt as _;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests get to finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A TLS setup that cannot be used. Messages name the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// Which file it is (`certificate`, `private key`, `client CA`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no usable PEM block of the expected kind, or a malformed one.
    #[error("{path} is not a PEM {what}: {detail}")]
    Pem {
        /// What was expected.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong (never the file's content).
        detail: String,
    },
    /// The private key does not belong to the certificate, or rustls refused the pair.
    #[error("the private key {key} does not match the certificate {cert}: {detail}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        detail: String,
    },
    /// The client CA file holds no certificate usable as a trust anchor.
    #[error("client CA {path}: {detail}")]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// Where the server's TLS material is.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of that certificate.
    pub key: PathBuf,
    /// PEM certificate(s) of the CA(s) whose client certificates are accepted (mTLS).
    pub client_ca: Option<PathBuf>,
    /// Refuse the handshake of a client without a certificate (with `client_ca` only).
    pub require_client_cert: bool,
}

/// The SHA-256 fingerprint of the client certificate the TLS handshake verified, attached
/// to every request of that connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCertificate(pub CertFingerprint);

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Reads every `CERTIFICATE` block of a PEM file.
///
/// # Errors
/// [`TlsError::Read`], or [`TlsError::Pem`] when there is none or one is malformed.
pub fn read_certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            path: path.to_path_buf(),
            detail: "no CERTIFICATE block found".to_owned(),
        });
    }
    Ok(certs)
}

/// Reads the first private key block of a PEM file.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read("private key", path)?;
    // The parser's error says which PEM section failed, never the key bytes.
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        what: "private key",
        path: path.to_path_buf(),
        detail: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block found".to_owned()
            }
            // The decoder's message can quote a character of the key text.
            rustls::pki_types::pem::Error::Base64Decode(_) => {
                "the PEM block is not valid base64".to_owned()
            }
            other => other.to_string(),
        },
    })
}

/// The process-wide rustls crypto provider: ring (pure Rust and assembly, no C toolchain
/// surprises), installed once.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls server configuration from `files`, checking that the key matches the
/// certificate. ALPN offers HTTP/2 and HTTP/1.1.
///
/// # Errors
/// A [`TlsError`] naming the file at fault.
pub fn load_server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = read_certificates("certificate", &files.cert)?;
    let key = read_key(&files.key)?;
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
            detail: e.to_string(),
        })?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certificates("client CA", ca)? {
                roots.add(cert).map_err(|e| TlsError::ClientCa {
                    path: ca.clone(),
                    detail: format!("not a usable CA certificate: {e}"),
                })?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            let verifier = if files.require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| TlsError::ClientCa {
                path: ca.clone(),
                detail: e.to_string(),
            })?)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
            detail: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, then lets requests in
/// flight finish (up to 30 s). Each request carries the peer's address
/// (`ConnectInfo<SocketAddr>`) and, when the client showed a verified certificate, its
/// [`PeerCertificate`].
///
/// A failed handshake (plain HTTP sent to the TLS port, an untrusted client certificate)
/// closes that connection and is logged at debug level; the server goes on.
///
/// # Errors
/// None today: accept errors (such as running out of file descriptors) are logged and the
/// loop continues after a short pause, as hyper's own server does.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: Router,
    config: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let certificate = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| PeerCertificate(CertFingerprint::of_der(leaf.as_ref())));
            let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                if let Some(c) = certificate {
                    req.extensions_mut().insert(c);
                }
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after 30 s of shutdown; closing them");
    }
    Ok(())
}
