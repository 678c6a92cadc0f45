//! TLS for RedisStore: the certificates a user gives, the clients built
//! with them, and how a refused handshake is reported.

use super::{classify, RedisStoreOptions};
use crate::error::StoreError;
use redis::RedisError;
use std::path::Path;

/// Certificates for `rediss://` URLs. The server's certificate is always
/// verified (chain and host name or IP); these say whom to trust and who we
/// are. Not every field is needed: a CA alone is the usual private-CA setup.
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// PEM of the CA certificate(s) that signed the servers' certificates,
    /// trusted instead of the system's store. None: the system's store.
    pub ca_pem: Option<Vec<u8>>,
    /// For mutual TLS (servers with `tls-auth-clients yes`).
    pub client: Option<ClientIdentity>,
}

/// A client certificate and its private key, both PEM.
#[derive(Clone)]
pub struct ClientIdentity {
    /// The certificate (optionally followed by intermediates).
    pub cert_pem: Vec<u8>,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: Vec<u8>,
}

impl TlsOptions {
    /// Reads the PEM files: `ca` to trust, `client` as (certificate, key).
    pub fn from_files(
        ca: Option<&Path>,
        client: Option<(&Path, &Path)>,
    ) -> Result<Self, StoreError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| StoreError::Config(format!("{}: {e}", p.display())))
        };
        Ok(Self {
            ca_pem: ca.map(read).transpose()?,
            client: match client {
                Some((cert, key)) => Some(ClientIdentity {
                    cert_pem: read(cert)?,
                    key_pem: read(key)?,
                }),
                None => None,
            },
        })
    }

    pub(super) fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self.client.as_ref().map(|c| redis::ClientTlsConfig {
                client_cert: c.cert_pem.clone(),
                client_key: c.key_pem.clone(),
            }),
            root_cert: self.ca_pem.clone(),
        }
    }
}

// Keys stay out of logs; whether each part is set is what helps.
impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<set>"))
            .field("client", &self.client.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientIdentity(<redacted>)")
    }
}

/// A client for one URL, with `tls`'s certificates when given. Used for the
/// standalone connection and for every pub/sub connection.
pub(super) fn client(url: &str, tls: Option<&TlsOptions>) -> Result<redis::Client, StoreError> {
    let cfg = |e: RedisError| StoreError::Config(e.to_string());
    match tls {
        None => redis::Client::open(url).map_err(cfg),
        Some(tls) => redis::Client::build_with_tls(url, tls.certificates()).map_err(cfg),
    }
}

/// Checks the URLs against `tls` and readies rustls when any URL uses TLS.
pub(super) fn prepare_tls(urls: &[String], tls: Option<&TlsOptions>) -> Result<(), StoreError> {
    let secure = |u: &String| u.starts_with("rediss://");
    if tls.is_some() {
        // Certificates with a plain URL would silently go unused.
        if let Some(plain) = urls.iter().find(|u| !secure(u)) {
            return Err(StoreError::Config(format!(
                "TLS options given but {plain:?} is not a rediss:// URL"
            )));
        }
    }
    if urls.iter().any(secure) {
        // redis leaves the provider to the process; without one installed,
        // rustls panics when more than one provider is compiled in. One the
        // application installed stays (this call then fails, harmlessly).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
    Ok(())
}

/// A failed first connection: a TLS handshake refused (untrusted or
/// mismatched certificate, client certificate missing or refused) is a
/// configuration error, which no retry will mend; the rest as `classify`.
pub(super) fn classify_connect(e: RedisError) -> StoreError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = cause {
        if let Some(tls) = rustls_error(err) {
            return StoreError::Config(format!("TLS: {tls}"));
        }
        cause = err.source();
    }
    classify(e)
}

/// One direct connection before the manager's, which retries its first
/// connection with backoff (about 10 s) whatever failed: a refused
/// certificate comes back at once. Only a TLS refusal ends `connect` here.
pub(super) async fn check_handshake(
    client: &redis::Client,
    opts: &RedisStoreOptions,
) -> Result<(), StoreError> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(opts.connection_timeout))
        .set_response_timeout(Some(opts.response_timeout));
    match client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(classify_connect)
    {
        Err(e @ StoreError::Config(_)) => Err(e),
        _ => Ok(()),
    }
}

/// The rustls error inside `e`: an I/O error carries it as its payload,
/// which `source()` skips, and redis keeps I/O errors behind an `Arc`.
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        Some(tls)
    } else if let Some(io) = e.downcast_ref::<std::io::Error>() {
        io.get_ref().and_then(|inner| rustls_error(inner))
    } else if let Some(shared) = e.downcast_ref::<Shared>() {
        rustls_error(&**shared)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_what_is_set_and_no_key() {
        let tls = TlsOptions {
            ca_pem: Some(b"-----BEGIN CERTIFICATE-----".to_vec()),
            client: Some(ClientIdentity {
                cert_pem: b"cert".to_vec(),
                key_pem: b"-----BEGIN PRIVATE KEY----- secret".to_vec(),
            }),
        };
        let text = format!("{tls:?}");
        assert_eq!(
            text,
            r#"TlsOptions { ca_pem: Some("<set>"), client: Some("<set>") }"#
        );
        assert!(!format!("{:?}", tls.client).contains("secret"));
    }

    #[test]
    fn tls_options_need_rediss_urls() {
        let tls = TlsOptions::default();
        let urls = ["rediss://a:1".to_owned(), "redis://b:1".to_owned()];
        assert!(
            matches!(prepare_tls(&urls, Some(&tls)), Err(StoreError::Config(m)) if m.contains("redis://b:1"))
        );
        assert!(prepare_tls(&urls[..1], Some(&tls)).is_ok());
        assert!(prepare_tls(&urls[1..], None).is_ok());
    }
}
