//! `--tls-ca`, `--tls-cert`, `--tls-key`: the certificates `ff engine` and
//! `ff inspect` use for `rediss://` URLs.

use ff_engine::error::StoreError;
use ff_engine::store::TlsOptions;
use std::path::PathBuf;

/// The TLS flags, flattened into a command's arguments.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// PEM file of the CA(s) that signed the server's certificate, trusted
    /// instead of the system's store (for rediss:// URLs).
    #[arg(long, value_name = "PATH", env = "FF_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate, for a server that requires one
    /// (tls-auth-clients yes); with --tls-key.
    #[arg(long, value_name = "PATH", env = "FF_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "PATH", env = "FF_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The store's TLS options; `None` without flags (the system's trust
    /// store, no client certificate). Reads the files.
    pub fn options(&self) -> Result<Option<TlsOptions>, StoreError> {
        if self.tls_ca.is_none() && self.tls_cert.is_none() {
            return Ok(None);
        }
        let client = self.tls_cert.as_deref().zip(self.tls_key.as_deref());
        TlsOptions::from_files(self.tls_ca.as_deref(), client).map(Some)
    }
}
