//! Who may call: TLS (and client certificates) and bearer tokens. The files are read
//! once, at start.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

use super::ConfigError;

/// The variable a single bearer token can come from (not a flag: flags show in `ps`).
pub const AUTH_TOKEN_VAR: &str = "TESSERA_AUTH_TOKEN";

/// The TLS and token flags, and their keys of the config file.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(default)]
pub struct SecurityArgs {
    /// PEM certificate chain of the server; with --tls-key, the server speaks TLS only [default: plaintext].
    #[arg(long, env = "TESSERA_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "TESSERA_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): clients must present a certificate it signed (mTLS) [default: no client certificates].
    #[arg(long, env = "TESSERA_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// File of accepted bearer tokens, one per line; callers must send `authorization: Bearer TOKEN`.
    /// A single token can also come from the TESSERA_AUTH_TOKEN variable [default: no token check].
    #[arg(long, env = "TESSERA_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,
}

/// TLS material and bearer tokens.
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// TLS settings, when the server speaks TLS.
    pub tls: Option<TlsConfig>,
    /// Accepted bearer tokens; empty = no token check.
    pub auth_tokens: Vec<String>,
}

/// The server's TLS material, read from the files at start.
#[derive(Clone)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_pem: Vec<u8>,
    /// PEM private key.
    pub key_pem: Vec<u8>,
    /// PEM CA of client certificates (mTLS), if required.
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig").field("mtls", &self.client_ca_pem.is_some()).finish_non_exhaustive()
    }
}

impl SecurityArgs {
    /// These flags over `file`; reads the TLS files, the token file and [`AUTH_TOKEN_VAR`].
    pub fn resolve(self, file: Self) -> Result<SecurityConfig, ConfigError> {
        Ok(SecurityConfig {
            tls: tls_config(
                self.tls_cert.or(file.tls_cert),
                self.tls_key.or(file.tls_key),
                self.tls_client_ca.or(file.tls_client_ca),
            )?,
            auth_tokens: auth_tokens(
                self.auth_token_file.or(file.auth_token_file).as_deref(),
                std::env::var(AUTH_TOKEN_VAR).ok(),
            )?,
        })
    }
}

fn read_file(flag: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::Invalid(format!("{flag} {}: {e}", path.display())))
}

/// Reads the TLS files; certificate and key come together, a client CA needs both.
fn tls_config(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
) -> Result<Option<TlsConfig>, ConfigError> {
    match (cert, key) {
        (None, None) if client_ca.is_none() => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(TlsConfig {
            cert_pem: read_file("--tls-cert", &cert)?,
            key_pem: read_file("--tls-key", &key)?,
            client_ca_pem: client_ca.map(|ca| read_file("--tls-client-ca", &ca)).transpose()?,
        })),
        _ => Err(ConfigError::Invalid(
            "TLS needs both --tls-cert and --tls-key (and --tls-client-ca needs them too)".into(),
        )),
    }
}

/// The accepted bearer tokens: the file's non-empty lines (`#` starts a comment line)
/// plus the variable's value. A configured source without any token is an error, not
/// an open door.
fn auth_tokens(file: Option<&Path>, var: Option<String>) -> Result<Vec<String>, ConfigError> {
    let mut tokens = Vec::new();
    if let Some(path) = file {
        let text = String::from_utf8(read_file("--auth-token-file", path)?).map_err(|_| {
            ConfigError::Invalid(format!("--auth-token-file {}: not UTF-8 text", path.display()))
        })?;
        tokens.extend(
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned),
        );
        if tokens.is_empty() {
            return Err(ConfigError::Invalid(format!("--auth-token-file {} holds no token", path.display())));
        }
    }
    if let Some(token) = var {
        let token = token.trim();
        if token.is_empty() {
            return Err(ConfigError::Invalid(format!("{AUTH_TOKEN_VAR} is set but empty")));
        }
        tokens.push(token.to_owned());
    }
    if tokens.iter().any(|t| !t.bytes().all(|b| b.is_ascii_graphic())) {
        return Err(ConfigError::Invalid("bearer tokens must be printable ASCII without spaces".into()));
    }
    Ok(tokens)
}
