//! Throwaway certificates for the TLS workloads, made at run time (rcgen) in the run's scratch
//! directory: a CA, a server certificate for `127.0.0.1` and `localhost`, a client certificate.
//! Every file is readable by every user, keys included: memcached drops to `nobody` (`-u
//! nobody`) before it reads them, and the keys protect nothing beyond this run.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// The CN of the client certificate: the identity Switchyard's TLS listener gives loadgen.
pub const CLIENT_NAME: &str = "bench";

/// Where the files are (all absolute): `ca.pem`, `server.pem` + `server-key.pem`, `client.pem`
/// + `client-key.pem`.
#[derive(Debug, Clone)]
pub struct Certs {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Certs {
    /// Generates the CA and what it signs into `dir` (created, mode 0755, as is its parent,
    /// so that `nobody` can reach the files).
    pub fn generate(dir: &Path) -> anyhow::Result<Certs> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        for d in dir.parent().into_iter().chain([dir]) {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("chmod 755 {}", d.display()))?;
        }
        let dir = std::path::absolute(dir)
            .with_context(|| format!("absolute path of {}", dir.display()))?;
        if dir.to_string_lossy().contains(',') {
            // memcached takes the paths in a comma-separated `-o` list.
            bail!(
                "{}: memcached cannot take a certificate path with a comma (set TMPDIR)",
                dir.display()
            );
        }

        let mut ca = CertificateParams::default();
        ca.distinguished_name = named(&format!("Switchyard bench CA {}", std::process::id()));
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().context("generate the CA's key")?;
        let ca_cert = ca.self_signed(&ca_key).context("self-sign the CA")?;
        let issuer = Issuer::new(ca, ca_key);

        let mut server = CertificateParams::default();
        server.subject_alt_names = vec![
            SanType::DnsName("localhost".try_into().context("localhost as a DNS name")?),
            SanType::IpAddress([127, 0, 0, 1].into()),
        ];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let mut client = CertificateParams::default();
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];

        let certs = Certs {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server-key.pem"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client-key.pem"),
        };
        write_public(&certs.ca, &ca_cert.pem())?;
        for (params, name, cert, key) in [
            (server, "localhost", &certs.server_cert, &certs.server_key),
            (client, CLIENT_NAME, &certs.client_cert, &certs.client_key),
        ] {
            sign(params, name, &issuer, cert, key)?;
        }
        Ok(certs)
    }
}

/// Signs `params` as CN `name` with a new key; writes the certificate and the key.
fn sign(
    mut params: CertificateParams,
    name: &str,
    issuer: &Issuer<'_, KeyPair>,
    cert_path: &Path,
    key_path: &Path,
) -> anyhow::Result<()> {
    params.distinguished_name = named(name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().with_context(|| format!("generate a key for {name}"))?;
    let cert = params
        .signed_by(&key, issuer)
        .with_context(|| format!("sign the certificate of {name}"))?;
    write_public(cert_path, &cert.pem())?;
    write_public(key_path, &key.serialize_pem())
}

fn named(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// Writes `contents` to `path`, mode 0644.
fn write_public(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("chmod 644 {}", path.display()))
}
