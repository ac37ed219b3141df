//! TLS on both sides of the router, with rustls: a listener's server configuration (its
//! certificate, and the CA bundle client certificates must chain to for mutual TLS), a pool's
//! client configuration (the CA bundle its servers' certificates must chain to, the name they
//! must carry, an optional client certificate), and the identity a verified client
//! certificate gives its connection.
//!
//! The files are read when a generation is built ([`listener`], [`pool`]), so every reload reads
//! them again and a bad or missing file fails the reload with the old generation serving. A
//! connection keeps the configuration it was accepted or connected with: a rotated certificate
//! is presented to new connections only.
//!
//! TLS 1.3 and 1.2. Resumption is on at both ends: a listener keeps sessions (and issues
//! tickets, keyed per generation), a pool's configuration keeps the sessions its servers
//! granted, so a reconnect after a reset or an idle close skips the full handshake.

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::{ListenerTls, PoolTls};

/// A TLS file a config names that cannot be used: which file, for which key, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} = {}: {message}", path.display())]
pub struct TlsFileError {
    /// The config key that names it (`listeners[0].tls.cert`).
    pub key: String,
    /// The file, as resolved.
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

/// Where a TLS file is named in the config: the key's prefix (`listeners[0].tls`).
#[derive(Debug, Clone, Copy)]
struct Named<'a> {
    /// `listeners[N].tls` or `pools.NAME.tls`.
    table: &'a str,
}

impl Named<'_> {
    fn error(&self, field: &str, path: &Path, message: impl Into<String>) -> TlsFileError {
        TlsFileError {
            key: format!("{}.{field}", self.table),
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// The file's bytes, hashed into `seen` (what a pool's connections are compared by).
    fn read(
        &self,
        field: &str,
        path: &Path,
        seen: &mut DefaultHasher,
    ) -> Result<Vec<u8>, TlsFileError> {
        let bytes = std::fs::read(path).map_err(|e| self.error(field, path, e.to_string()))?;
        bytes.hash(seen);
        Ok(bytes)
    }

    fn certs(
        &self,
        field: &str,
        path: &Path,
        seen: &mut DefaultHasher,
    ) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
        let bytes = self.read(field, path, seen)?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(field, path, pem_error(&e)))?;
        if certs.is_empty() {
            return Err(self.error(field, path, "no PEM certificate in the file"));
        }
        Ok(certs)
    }

    fn key(
        &self,
        field: &str,
        path: &Path,
        seen: &mut DefaultHasher,
    ) -> Result<PrivateKeyDer<'static>, TlsFileError> {
        let bytes = self.read(field, path, seen)?;
        PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| self.error(field, path, pem_error(&e)))
    }

    fn roots(
        &self,
        field: &str,
        path: &Path,
        seen: &mut DefaultHasher,
    ) -> Result<Arc<RootCertStore>, TlsFileError> {
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(self.certs(field, path, seen)?);
        if added == 0 {
            return Err(self.error(
                field,
                path,
                format!("none of its {ignored} certificates can be a trust anchor"),
            ));
        }
        Ok(Arc::new(roots))
    }
}

/// What a PEM read failed on, in words: the file itself, or its contents.
fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => "no PEM item of the expected kind in the file".into(),
        other => format!("not a usable PEM file: {other:?}"),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server side of a TLS listener, from its files.
pub fn listener(files: &ListenerTls, table: &str) -> Result<Arc<ServerConfig>, TlsFileError> {
    let named = Named { table };
    let seen = &mut DefaultHasher::new();
    let certs = named.certs("cert", &files.cert, seen)?;
    let key = named.key("key", &files.key, seen)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| named.error("cert", &files.cert, e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = named.roots("client_ca", ca, seen)?;
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
                    .build()
                    .map_err(|e| named.error("client_ca", ca, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        named.error(
            "key",
            &files.key,
            format!("does not fit the certificate: {e}"),
        )
    })?;
    config.ticketer = rustls::crypto::ring::Ticketer::new()
        .map_err(|e| named.error("cert", &files.cert, e.to_string()))?;
    Ok(Arc::new(config))
}

/// A pool's TLS to one of its servers: the client configuration and the name the server's
/// certificate must carry.
#[derive(Clone)]
pub struct Connector {
    /// Shared by every server of the pool (and so is its cache of sessions to resume).
    pub config: Arc<ClientConfig>,
    /// The same without resumption, for a server that fails resumed handshakes (memcached
    /// 1.6 requiring client certificates without `ssl_session_cache` answers them with an
    /// `internal_error` alert).
    pub fresh: Arc<ClientConfig>,
    /// Set once a resumed handshake failed where a full one then succeeded: this server is
    /// reached without resumption from then on.
    pub no_resumption: Arc<std::sync::atomic::AtomicBool>,
    /// The name to verify.
    pub server_name: ServerName<'static>,
    /// A hash of the files' contents and the name: a reload that reads the same files keeps
    /// the server's connections (`backend::Destination::serves`).
    pub fingerprint: u64,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// The client side of a pool's TLS, from its files, and a hash of their contents.
pub fn pool(files: &PoolTls, table: &str) -> Result<(Arc<ClientConfig>, u64), TlsFileError> {
    let named = Named { table };
    let seen = &mut DefaultHasher::new();
    let roots = named.roots("ca", &files.ca, seen)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| named.error("ca", &files.ca, e.to_string()))?
        .with_root_certificates(roots);
    let config = match &files.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = named.certs("cert", cert, seen)?;
            let key_der = named.key("key", key, seen)?;
            builder.with_client_auth_cert(certs, key_der).map_err(|e| {
                named.error("key", key, format!("does not fit the certificate: {e}"))
            })?
        }
    };
    Ok((Arc::new(config), seen.finish()))
}

/// The connector to the server whose host is `host` (as written in `servers`).
pub fn connector(
    files: &PoolTls,
    config: &Arc<ClientConfig>,
    fingerprint: u64,
    host: &str,
) -> Result<Connector, String> {
    let name = files.server_name.as_deref().unwrap_or(host);
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|_| format!("`{name}` is not a DNS name or an IP address to verify"))?;
    let mut h = DefaultHasher::new();
    fingerprint.hash(&mut h);
    name.hash(&mut h);
    let mut fresh = (**config).clone();
    fresh.resumption = rustls::client::Resumption::disabled();
    Ok(Connector {
        config: config.clone(),
        fresh: Arc::new(fresh),
        no_resumption: Arc::default(),
        server_name,
        fingerprint: h.finish(),
    })
}

/// Whether two servers' TLS settings are the same (both none, or the same files and name).
pub fn same(a: &Option<Connector>, b: &Option<Connector>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.fingerprint == b.fingerprint,
        _ => false,
    }
}

/// A client's identity (see [`identity`]). A thin pointer: every client connection's task
/// holds one, `None` or not, and a `str`'s would be twice as wide.
pub type Identity = Arc<String>;

/// Who a client is, from the certificate it presented (verified by then): its subject CN,
/// else its first URI SAN (a SPIFFE ID), else its first DNS SAN. `None` for a certificate
/// with none of them, or none at all.
pub fn identity(certs: Option<&[CertificateDer<'_>]>) -> Option<Identity> {
    let leaf = certs?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    if let Some(cn) = cert
        .subject()
        .iter_common_name()
        .find_map(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
    {
        return Some(printable(cn));
    }
    let names = cert.subject_alternative_name().ok()??;
    use x509_parser::extensions::GeneralName;
    let general = &names.value.general_names;
    general
        .iter()
        .find_map(|n| match n {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .or_else(|| {
            general.iter().find_map(|n| match n {
                GeneralName::DNSName(dns) => Some(*dns),
                _ => None,
            })
        })
        .filter(|name| !name.is_empty())
        .map(printable)
}

/// An identity as logs, stats and plugins see it: control characters and spaces replaced,
/// so that it stays one token on a `STAT` line and one field in a log line.
fn printable(name: &str) -> Identity {
    let name = name
        .chars()
        .map(|c| {
            if c.is_control() || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect();
    Arc::new(name)
}

/// Why a handshake failed, in rustls's words when it was rustls that refused.
pub fn reason(e: &std::io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => tls.to_string(),
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "connection closed during the handshake".into()
        }
        None => e.to_string(),
    }
}

/// A TLS listener's settings as a generation holds them.
#[derive(Clone)]
pub struct Acceptor {
    /// The server configuration new connections are accepted with.
    pub config: Arc<ServerConfig>,
    /// Whether a client certificate is required (mutual TLS).
    pub mutual: bool,
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor")
            .field("mutual", &self.mutual)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(cn: Option<&str>, sans: Vec<rcgen::SanType>) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        params.subject_alt_names = sans;
        params.self_signed(&key).expect("certificate").der().clone()
    }

    #[test]
    fn the_identity_is_the_cn_else_a_uri_else_a_dns_name() {
        let uri = || {
            rcgen::SanType::URI(
                rcgen::string::Ia5String::try_from("spiffe://example.org/team/alpha").expect("uri"),
            )
        };
        let dns = || {
            rcgen::SanType::DnsName(
                rcgen::string::Ia5String::try_from("alpha.example.org").expect("dns"),
            )
        };
        let id = |cert: CertificateDer<'static>| identity(Some(&[cert])).map(|s| s.to_string());
        assert_eq!(
            id(cert_with(Some("alpha"), vec![uri(), dns()])).as_deref(),
            Some("alpha")
        );
        assert_eq!(
            id(cert_with(None, vec![dns(), uri()])).as_deref(),
            Some("spiffe://example.org/team/alpha")
        );
        assert_eq!(
            id(cert_with(None, vec![dns()])).as_deref(),
            Some("alpha.example.org")
        );
        assert_eq!(id(cert_with(None, vec![])), None);
        assert_eq!(
            id(cert_with(Some("team alpha\n"), vec![])).as_deref(),
            Some("team_alpha_")
        );
        assert_eq!(identity(None), None);
    }

    #[test]
    fn files_that_cannot_be_used_are_named_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("switchyard-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").expect("write");
        let files = ListenerTls {
            cert: garbage.clone(),
            key: dir.join("missing-key.pem"),
            client_ca: None,
            line: 3,
        };
        let e = listener(&files, "listeners[0].tls").expect_err("garbage");
        assert_eq!(e.key, "listeners[0].tls.cert");
        assert!(e.message.contains("no PEM certificate"), "{e}");

        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let good = dir.join("cert.pem");
        std::fs::write(&good, cert.pem()).expect("write");
        let files = ListenerTls {
            cert: good.clone(),
            ..files
        };
        let e = listener(&files, "listeners[0].tls").expect_err("missing key");
        assert_eq!(e.key, "listeners[0].tls.key");
        assert!(e.to_string().contains("missing-key.pem"), "{e}");

        let key_file = dir.join("key.pem");
        std::fs::write(&key_file, key.serialize_pem()).expect("write");
        let files = ListenerTls {
            key: key_file,
            ..files
        };
        assert!(listener(&files, "listeners[0].tls").is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
