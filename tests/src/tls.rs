//! TLS for the tests: throwaway certificates ([`Certs`], made with rcgen) and a blocking TLS
//! client ([`TlsOptions::connect`], rustls) that is an ordinary [`Client`] underneath.
//!
//! [`Certs::generate`] writes a CA and what it signed into a directory, readable by every user
//! (memcached runs as `nobody` and re-reads its files as that user on `refresh_certs`):
//!
//! | file | what |
//! | --- | --- |
//! | `ca.pem` | the CA's certificate, the trust anchor of both sides |
//! | `server.pem`, `server-key.pem` | a server certificate for `localhost` and `127.0.0.1` |
//! | `client.pem`, `client-key.pem` | a client certificate with CN `alpha` |
//!
//! [`Authority`] signs more: clients with other names, an expired client, and (through
//! [`Certs::rotate_server`]) a new server certificate written over the old files. A CA of
//! its own ([`Authority::new`]) makes certificates nobody else trusts.
//!
//! A [`TlsClient`] does its handshake in [`TlsOptions::connect`] (a failure is the `Err`,
//! with rustls's reason), then two threads relay between the TLS session and a loopback
//! socket that a [`Client`] reads and writes, so every method of [`Client`] (deadlines,
//! [`Client::read_through`], [`Client::expect_closed`]) works over TLS unchanged; the
//! [`Client`]'s [`Client::peer`] is that relay's socket, [`TlsClient::addr`] the server.
//! When the server ends the session (a refused client certificate arrives as an alert after a
//! TLS 1.3 handshake has completed on the client's side), the relay closes the [`Client`]'s
//! socket and [`TlsClient::tls_error`] says why. Session resumption is off: every connection
//! is a full handshake, and shows the certificate the server presents now.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, date_time_ymd,
};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ProtocolVersion, RootCertStore};

use crate::client::{CONNECT_DEADLINE, Client, REPLY_DEADLINE};

/// `ca.pem`: the CA's certificate.
pub const CA: &str = "ca.pem";
/// `server.pem`: the server's certificate.
pub const SERVER_CERT: &str = "server.pem";
/// `server-key.pem`: the server's private key (PKCS#8).
pub const SERVER_KEY: &str = "server-key.pem";
/// `client.pem`: the client certificate, CN `alpha`.
pub const CLIENT_CERT: &str = "client.pem";
/// `client-key.pem`: the client's private key (PKCS#8).
pub const CLIENT_KEY: &str = "client-key.pem";

/// The CN of the client certificate [`Certs::generate`] writes: the identity it gives.
pub const CLIENT_NAME: &str = "alpha";

/// A certificate and its private key.
#[derive(Clone)]
pub struct Identity {
    cert: CertificateDer<'static>,
    cert_pem: String,
    /// PKCS#8 DER.
    key: Vec<u8>,
    key_pem: String,
    name: String,
}

impl Identity {
    /// The certificate, DER: what a server presents, to compare with.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PEM (PKCS#8).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The subject CN.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes the certificate to `dir/<stem>.pem` and the key to `dir/<stem>-key.pem`, readable
    /// by every user; returns both paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}-key.pem"));
        write_public(&cert, &self.cert_pem);
        write_public(&key, &self.key_pem);
        (cert, key)
    }

    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()))
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A certificate authority: signs server and client certificates.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
    pem: String,
    name: String,
}

impl Authority {
    /// A new self-signed CA named `name` (its CN), with a fresh key.
    pub fn new(name: &str) -> Authority {
        let mut params = CertificateParams::default();
        params.distinguished_name = named(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("generate a CA key");
        let cert = params
            .self_signed(&key)
            .expect("self-sign the CA certificate");
        Authority {
            cert: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
            name: name.to_owned(),
        }
    }

    /// Its certificate, DER.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// Its certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A server certificate with CN `name` for DNS name `localhost` and IP address 127.0.0.1,
    /// valid from 1975 to 4096.
    pub fn server(&self, name: &str) -> Identity {
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![
            SanType::DnsName("localhost".try_into().expect("a DNS name")),
            SanType::IpAddress([127, 0, 0, 1].into()),
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(name, params)
    }

    /// A client certificate with CN `name` and no SAN, valid from 1975 to 4096.
    pub fn client(&self, name: &str) -> Identity {
        let mut params = CertificateParams::default();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(name, params)
    }

    /// A client certificate with CN `name` that expired in 2001.
    pub fn expired_client(&self, name: &str) -> Identity {
        let mut params = CertificateParams::default();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = date_time_ymd(2000, 1, 1);
        params.not_after = date_time_ymd(2001, 1, 1);
        self.sign(name, params)
    }

    fn sign(&self, name: &str, mut params: CertificateParams) -> Identity {
        params.distinguished_name = named(name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("generate a key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .unwrap_or_else(|e| panic!("sign {name:?} with {:?}: {e}", self.name));
        Identity {
            cert: cert.der().clone(),
            cert_pem: cert.pem(),
            key: key.serialize_der(),
            key_pem: key.serialize_pem(),
            name: name.to_owned(),
        }
    }
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn named(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// A CA, a server and a client certificate, written to a directory (see the module's table).
#[derive(Debug)]
pub struct Certs {
    dir: PathBuf,
    /// The CA that signed `server` and `client`.
    pub ca: Authority,
    /// What `server.pem` and `server-key.pem` hold now.
    pub server: Identity,
    /// What `client.pem` and `client-key.pem` hold: CN [`CLIENT_NAME`].
    pub client: Identity,
    rotations: u32,
}

impl Certs {
    /// Generates a CA (named apart from every other this process generates), a server and a
    /// client certificate, and writes them into `dir` (created if missing, mode 0755; files
    /// 0644).
    pub fn generate(dir: &Path) -> Certs {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod 755 {}: {e}", dir.display()));
        // A name of its own: two CAs with one name look like one to a verifier, which then
        // finds a bad signature rather than an unknown issuer.
        static GENERATED: AtomicUsize = AtomicUsize::new(0);
        let n = GENERATED.fetch_add(1, Ordering::Relaxed);
        let ca = Authority::new(&format!("Switchyard test CA {}-{n}", std::process::id()));
        let server = ca.server("localhost");
        let client = ca.client(CLIENT_NAME);
        write_public(&dir.join(CA), ca.pem());
        server.write(dir, "server");
        client.write(dir, "client");
        Certs {
            dir: dir.to_path_buf(),
            ca,
            server,
            client,
            rotations: 0,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `name` in the directory ([`CA`], [`SERVER_CERT`], ...), as an absolute path if the
    /// directory is one.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A new server certificate from the same CA (CN `localhost rotated N`, a new key), written
    /// over `server.pem` and `server-key.pem` (the certificate first); returns it.
    pub fn rotate_server(&mut self) -> &Identity {
        self.rotations += 1;
        self.server = self
            .ca
            .server(&format!("localhost rotated {}", self.rotations));
        self.server.write(&self.dir, "server");
        &self.server
    }

    /// Options that trust this CA and show no client certificate.
    pub fn trust(&self) -> TlsOptions {
        TlsOptions::trusting(self.ca.der())
    }

    /// Options that trust this CA and show the client certificate (CN [`CLIENT_NAME`]).
    pub fn as_client(&self) -> TlsOptions {
        self.trust().with_identity(&self.client)
    }
}

/// Writes `contents` to `path`, mode 0644.
fn write_public(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| panic!("chmod 644 {}: {e}", path.display()));
}

/// How a [`TlsClient`] connects: the CA it trusts, the name it verifies, the certificate it
/// shows if asked, the protocol versions it offers.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    ca: CertificateDer<'static>,
    identity: Option<Identity>,
    server_name: String,
    tls12_only: bool,
}

impl TlsOptions {
    /// Trusts `ca` only, verifies the name `localhost`, shows no certificate, offers TLS 1.3
    /// and 1.2.
    pub fn trusting(ca: &CertificateDer<'static>) -> TlsOptions {
        TlsOptions {
            ca: ca.clone(),
            identity: None,
            server_name: "localhost".to_owned(),
            tls12_only: false,
        }
    }

    /// Shows `identity` when the server asks for a client certificate.
    pub fn with_identity(mut self, identity: &Identity) -> TlsOptions {
        self.identity = Some(identity.clone());
        self
    }

    /// Verifies the server's certificate for `name` (a DNS name or an IP address).
    pub fn with_server_name(mut self, name: &str) -> TlsOptions {
        self.server_name = name.to_owned();
        self
    }

    /// Offers TLS 1.2 only.
    pub fn tls12_only(mut self) -> TlsOptions {
        self.tls12_only = true;
        self
    }

    /// Connects to `addr` and completes the handshake within [`REPLY_DEADLINE`]. `Err` says
    /// why not: the connect failed, the server's certificate did not verify, the server sent
    /// an alert or closed the connection, or the handshake did not finish in time.
    pub fn connect(&self, addr: SocketAddr) -> Result<TlsClient, String> {
        let name = ServerName::try_from(self.server_name.clone())
            .unwrap_or_else(|e| panic!("server name {:?}: {e}", self.server_name));
        let mut conn = ClientConnection::new(self.config(), name)
            .unwrap_or_else(|e| panic!("a TLS client for {addr}: {e}"));
        let mut tcp = TcpStream::connect_timeout(&addr, CONNECT_DEADLINE)
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        tcp.set_nodelay(true)
            .map_err(|e| format!("set TCP_NODELAY on {addr}: {e}"))?;
        let started = Instant::now();
        while conn.is_handshaking() {
            let left = REPLY_DEADLINE.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(format!(
                    "TLS handshake with {addr}: not done within {REPLY_DEADLINE:?}"
                ));
            }
            tcp.set_read_timeout(Some(left))
                .and_then(|()| tcp.set_write_timeout(Some(left)))
                .map_err(|e| format!("set timeouts on {addr}: {e}"))?;
            match conn.complete_io(&mut tcp) {
                Ok((0, 0)) if conn.is_handshaking() => {
                    return Err(format!("TLS handshake with {addr}: connection closed"));
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(format!(
                        "TLS handshake with {addr}: not done within {REPLY_DEADLINE:?}"
                    ));
                }
                Err(e) => return Err(format!("TLS handshake with {addr}: {e}")),
            }
        }
        // The relay's reads block until the server or the client ends the session.
        tcp.set_read_timeout(None)
            .and_then(|()| tcp.set_write_timeout(None))
            .map_err(|e| format!("clear timeouts on {addr}: {e}"))?;
        let server_chain = conn
            .peer_certificates()
            .map(<[CertificateDer<'static>]>::to_vec)
            .unwrap_or_default();
        let version = conn.protocol_version();
        relay(conn, tcp, addr).map(|(client, session)| TlsClient {
            client,
            addr,
            server_chain,
            version,
            session,
        })
    }

    fn config(&self) -> Arc<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&'static rustls::SupportedProtocolVersion] = if self.tls12_only {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca.clone())
            .unwrap_or_else(|e| panic!("trust the test CA: {e}"));
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap_or_else(|e| panic!("TLS versions {versions:?}: {e}"))
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some(identity) => builder
                .with_client_auth_cert(vec![identity.cert.clone()], identity.private_key())
                .unwrap_or_else(|e| panic!("client certificate {:?}: {e}", identity.name)),
        };
        config.resumption = Resumption::disabled();
        Arc::new(config)
    }
}

/// A [`Client`] whose bytes travel over a TLS session (it derefs to the [`Client`]), and what
/// the handshake showed.
#[derive(Debug)]
pub struct TlsClient {
    client: Client,
    addr: SocketAddr,
    server_chain: Vec<CertificateDer<'static>>,
    version: Option<ProtocolVersion>,
    session: Arc<Session>,
}

impl TlsClient {
    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The certificate the server presented (the first of its chain).
    pub fn server_certificate(&self) -> &CertificateDer<'static> {
        self.server_chain
            .first()
            .unwrap_or_else(|| panic!("{} presented no certificate", self.addr))
    }

    /// The TLS version negotiated.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Why the session ended, if the TLS layer said: an alert from the server (`received
    /// fatal alert: CertificateRequired`), a record that did not decrypt, a failed read.
    pub fn tls_error(&self) -> Option<String> {
        lock(&self.session.error).clone()
    }

    /// The [`Client`] alone (the session lives as long as it does).
    pub fn into_client(self) -> Client {
        self.client
    }
}

impl Deref for TlsClient {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for TlsClient {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// The TLS session the relay threads share.
#[derive(Debug)]
struct Session {
    conn: Mutex<ClientConnection>,
    /// Written only while `conn` is held, so records go out in the order they were sealed.
    tcp: TcpStream,
    error: Mutex<Option<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Session {
    /// Notes why the session ended (the first reason only).
    fn fail(&self, why: String) {
        lock(&self.error).get_or_insert(why);
    }

    /// Writes every TLS record the connection has sealed.
    fn flush(&self, conn: &mut ClientConnection) -> std::io::Result<()> {
        let mut tcp = &self.tcp;
        while conn.wants_write() {
            conn.write_tls(&mut tcp)?;
        }
        Ok(())
    }

    /// Feeds `bytes` read from the server (none: it closed the connection) to the session;
    /// returns the plaintext they carried and whether the session is over.
    fn receive(&self, mut bytes: &[u8]) -> (Vec<u8>, bool) {
        let eof = bytes.is_empty();
        let mut conn = lock(&self.conn);
        let mut plain = Vec::new();
        let mut over = eof;
        loop {
            if let Err(e) = conn.read_tls(&mut bytes) {
                self.fail(format!("TLS read: {e}"));
                return (plain, true);
            }
            match conn.process_new_packets() {
                Ok(state) => over |= state.peer_has_closed(),
                Err(e) => {
                    self.fail(e.to_string());
                    // The alert saying why, if the connection is still there to take it.
                    let _ = self.flush(&mut conn);
                    return (plain, true);
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            loop {
                match conn.reader().read(&mut chunk) {
                    Ok(0) => {
                        over = true;
                        break;
                    }
                    Ok(n) => plain.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        // A TCP close without close_notify: the session is over all the same.
                        over = true;
                        break;
                    }
                }
            }
            if bytes.is_empty() {
                break;
            }
        }
        if let Err(e) = self.flush(&mut conn) {
            self.fail(format!("TLS write: {e}"));
        }
        (plain, over)
    }
}

/// Starts the two relay threads between `conn` over `tcp` and a loopback socket; returns the
/// [`Client`] on the other end of that socket.
fn relay(
    conn: ClientConnection,
    tcp: TcpStream,
    addr: SocketAddr,
) -> Result<(Client, Arc<Session>), String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind a relay socket: {e}"))?;
    let relay_addr = listener
        .local_addr()
        .map_err(|e| format!("address of the relay socket: {e}"))?;
    let client = Client::connect(relay_addr);
    let (local, _) = listener
        .accept()
        .map_err(|e| format!("accept on the relay socket: {e}"))?;
    local
        .set_nodelay(true)
        .map_err(|e| format!("set TCP_NODELAY on the relay socket: {e}"))?;
    let clone = |s: &TcpStream| s.try_clone().map_err(|e| format!("clone a socket: {e}"));
    let (tcp_read, local_write) = (clone(&tcp)?, clone(&local)?);
    let session = Arc::new(Session {
        conn: Mutex::new(conn),
        tcp,
        error: Mutex::new(None),
    });
    let down = session.clone();
    std::thread::Builder::new()
        .name(format!("tls-from-{addr}"))
        .spawn(move || from_server(&down, tcp_read, local_write))
        .map_err(|e| format!("start a relay thread: {e}"))?;
    let up = session.clone();
    std::thread::Builder::new()
        .name(format!("tls-to-{addr}"))
        .spawn(move || to_server(&up, local))
        .map_err(|e| format!("start a relay thread: {e}"))?;
    Ok((client, session))
}

/// Server to client: decrypts what arrives and passes it on; when the session ends, closes
/// the client's socket.
fn from_server(session: &Session, mut tcp: TcpStream, mut local: TcpStream) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match tcp.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                session.fail(format!("read: {e}"));
                0
            }
        };
        let (plain, over) = session.receive(&buf[..n]);
        if local.write_all(&plain).is_err() || over {
            break;
        }
    }
    let _ = local.shutdown(Shutdown::Both);
}

/// Client to server: encrypts what the client writes; when the client closes, ends the
/// session (close_notify) and the connection.
fn to_server(session: &Session, mut local: TcpStream) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match local.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => 0,
        };
        let mut conn = lock(&session.conn);
        if n == 0 {
            conn.send_close_notify();
            let _ = session.flush(&mut conn);
            drop(conn);
            let _ = session.tcp.shutdown(Shutdown::Both);
            return;
        }
        let sealed = conn.writer().write_all(&buf[..n]);
        if let Err(e) = sealed.and_then(|()| session.flush(&mut conn)) {
            // The server is gone; the other thread reads why and closes the client's socket.
            session.fail(format!("write: {e}"));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestDir;
    use crate::client::Ending;
    use rustls::ServerConfig;
    use rustls::server::WebPkiClientVerifier;

    /// A rustls server on a free port that requires a client certificate from `ca` and echoes
    /// every line, for `connections` connections; a refused handshake just closes.
    fn echo_server(certs: &Certs, connections: usize) -> SocketAddr {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(certs.ca.der().clone()).expect("trust the CA");
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .expect("a client verifier");
        let config = Arc::new(
            ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_client_cert_verifier(verifier)
                .with_single_cert(vec![certs.server.der().clone()], certs.server.private_key())
                .expect("the server certificate"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local address");
        std::thread::spawn(move || {
            for _ in 0..connections {
                let (tcp, _) = listener.accept().expect("accept");
                let config = config.clone();
                std::thread::spawn(move || {
                    let conn = rustls::ServerConnection::new(config).expect("a server session");
                    let mut stream = rustls::StreamOwned::new(conn, tcp);
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Whether `options` gets an echo from `addr`; `Err` is why not.
    fn echoed(options: &TlsOptions, addr: SocketAddr) -> Result<(), String> {
        let mut client = options.connect(addr)?;
        client
            .try_send(b"ping\r\n")
            .map_err(|e| format!("write: {e}"))?;
        match client.read_through(b"\r\n") {
            (bytes, Ending::Terminator) if bytes == b"ping\r\n" => Ok(()),
            (bytes, ending) => Err(format!(
                "{ending:?} after {}; TLS: {:?}",
                crate::show(&bytes),
                client.tls_error()
            )),
        }
    }

    #[test]
    fn generated_certificates_verify_and_the_wrong_ones_do_not() {
        let dir = TestDir::new("tls-certs");
        let mut certs = Certs::generate(dir.path());
        for name in [CA, SERVER_CERT, SERVER_KEY, CLIENT_CERT, CLIENT_KEY] {
            let mode = std::fs::metadata(certs.path(name))
                .expect("a written file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644, "{name}");
        }
        let other = Authority::new("another CA");
        let addr = echo_server(&certs, 7);

        echoed(&certs.as_client(), addr).expect("the client certificate is accepted");
        echoed(&certs.as_client().tls12_only(), addr).expect("over TLS 1.2 too");
        echoed(&certs.as_client().with_server_name("127.0.0.1"), addr)
            .expect("the server certificate names 127.0.0.1");

        let refused = [
            ("no client certificate", certs.trust()),
            (
                "a client certificate from another CA",
                certs.trust().with_identity(&other.client(CLIENT_NAME)),
            ),
            (
                "an expired client certificate",
                certs
                    .trust()
                    .with_identity(&certs.ca.expired_client(CLIENT_NAME)),
            ),
            (
                "a server name the certificate lacks",
                certs.as_client().with_server_name("example.com"),
            ),
        ];
        for (what, options) in refused {
            let err = echoed(&options, addr).expect_err(what);
            println!("{what}: {err}");
        }

        let before = certs.server.der().clone();
        let rotated = certs.rotate_server().der().clone();
        assert_ne!(before, rotated);
        let on_disk = std::fs::read_to_string(certs.path(SERVER_CERT)).expect("read");
        assert_eq!(on_disk, certs.server.cert_pem());
        assert_eq!(certs.server.name(), "localhost rotated 1");
        let addr = echo_server(&certs, 1);
        let client = certs
            .as_client()
            .connect(addr)
            .expect("the rotated certificate");
        assert_eq!(client.server_certificate(), &rotated);
    }
}
