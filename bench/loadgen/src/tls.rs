//! TLS to the server (`--tls-ca`): a rustls client configuration built once from the files the
//! flags name, the name each server's certificate must carry, the sessions of the load
//! connections (async, [`Tls::connect`]) and the blocking handshakes of the first probe and the
//! idle connections.
//!
//! Resumption stays on, as in any rustls client: the configuration keeps the sessions its
//! servers grant. Every connection is opened before the warm-up, so no handshake, full or
//! resumed, falls in the measured window.

use std::io::{self, Read as _, Write as _};
use std::net::TcpStream as StdTcpStream;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail, ensure};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::cli::TlsOptions;

/// What every TLS connection of a run shares.
#[derive(Debug)]
pub struct Tls {
    config: Arc<ClientConfig>,
    /// The name server `i`'s certificate must carry, in the order of `--server`.
    names: Vec<ServerName<'static>>,
    /// A client certificate is configured (`--tls-cert`).
    client_cert: bool,
}

/// What a handshake settled on, for the report.
#[derive(Debug, Clone)]
pub struct Negotiated {
    /// The name verified.
    pub server_name: String,
    /// `TLSv1_3`, `TLSv1_2`.
    pub version: String,
    /// `TLS13_AES_256_GCM_SHA384`, ...
    pub cipher_suite: String,
    /// Whether the client showed a certificate.
    pub client_cert: bool,
}

impl Tls {
    /// Reads the files `options` names; `servers` are the `HOST:PORT` of `--server`, whose hosts
    /// are the names to verify unless `--tls-server-name` gives one.
    pub fn new(options: &TlsOptions, servers: &[&str]) -> anyhow::Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in certificates(&options.ca)? {
            roots
                .add(cert)
                .with_context(|| format!("--tls-ca {}", options.ca.display()))?;
        }
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("rustls refuses its own default protocol versions")?
            .with_root_certificates(roots);
        let config = match &options.client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(certificates(cert)?, private_key(key)?)
                .with_context(|| {
                    format!(
                        "--tls-cert {} with --tls-key {}",
                        cert.display(),
                        key.display()
                    )
                })?,
        };
        let names = servers
            .iter()
            .map(|server| {
                let name = match &options.server_name {
                    Some(name) => name.as_str(),
                    None => host(server),
                };
                ServerName::try_from(name.to_owned()).map_err(|_| {
                    anyhow!("{name:?} is neither a DNS name nor an IP address to verify (--tls-server-name)")
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Tls {
            config: Arc::new(config),
            names,
            client_cert: options.client.is_some(),
        })
    }

    fn name(&self, server: usize) -> ServerName<'static> {
        self.names[server % self.names.len()].clone()
    }

    /// The TLS session of a load connection to server `server` over `tcp`, handshake done.
    pub async fn connect(&self, server: usize, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        TlsConnector::from(Arc::clone(&self.config))
            .connect(self.name(server), tcp)
            .await
    }

    /// A session over a blocking socket, its handshake done (within the socket's timeouts).
    pub fn handshake(&self, server: usize, mut tcp: StdTcpStream) -> io::Result<Blocking> {
        let mut session = ClientConnection::new(Arc::clone(&self.config), self.name(server))
            .map_err(io::Error::other)?;
        while session.is_handshaking() {
            session.complete_io(&mut tcp)?;
        }
        while session.wants_write() {
            session.write_tls(&mut tcp)?;
        }
        Ok(Blocking { tcp, session })
    }

    /// Fails fast, with rustls's reason, where a load connection would fail: a handshake with
    /// server `server` and one `version` round trip (a server that refuses the client's
    /// certificate says so only after a TLS 1.3 handshake). Returns what was negotiated.
    pub fn probe(&self, server: usize, tcp: StdTcpStream) -> anyhow::Result<Negotiated> {
        let Blocking {
            mut tcp,
            mut session,
        } = self.handshake(server, tcp).context("TLS handshake")?;
        let mut stream = rustls::Stream::new(&mut session, &mut tcp);
        stream
            .write_all(b"version\r\n")
            .and_then(|()| stream.flush())
            .context("`version` over TLS")?;
        let mut reply = Vec::new();
        let mut chunk = [0u8; 256];
        while !reply.ends_with(b"\r\n") && reply.len() < 1024 {
            let n = stream.read(&mut chunk).context("`version` over TLS")?;
            ensure!(
                n > 0,
                "the server closed the connection after the TLS handshake"
            );
            reply.extend_from_slice(&chunk[..n]);
        }
        if !reply.starts_with(b"VERSION ") {
            bail!(
                "`version` over TLS answered {:?}",
                String::from_utf8_lossy(&reply).trim_end()
            );
        }
        let name = self.name(server);
        Ok(Negotiated {
            server_name: name.to_str().into_owned(),
            version: session
                .protocol_version()
                .map_or_else(|| "unknown".into(), |v| format!("{v:?}")),
            cipher_suite: session
                .negotiated_cipher_suite()
                .map_or_else(|| "unknown".into(), |s| format!("{:?}", s.suite())),
            client_cert: self.client_cert,
        })
    }
}

/// A TLS session over a blocking socket.
#[derive(Debug)]
pub struct Blocking {
    pub tcp: StdTcpStream,
    pub session: ClientConnection,
}

/// The host of `HOST:PORT` (`[::1]:11211` gives `::1`).
fn host(server: &str) -> &str {
    let host = server.rsplit_once(':').map_or(server, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    ensure!(
        !certs.is_empty(),
        "{}: no PEM certificate in it",
        path.display()
    );
    Ok(certs)
}

fn private_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_the_name_to_verify() {
        assert_eq!(host("127.0.0.1:11211"), "127.0.0.1");
        assert_eq!(host("localhost:1"), "localhost");
        assert_eq!(host("[::1]:11211"), "::1");
        assert_eq!(host("nohost"), "nohost");
    }
}
