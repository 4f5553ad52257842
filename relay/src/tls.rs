//! HTTPS in the relay itself (docs/PROTOCOL.md 5.12), three ways:
//!
//! - [`Tls::Files`]: a certificate and key in PEM (certbot's
//!   `fullchain.pem` and `privkey.pem`), looked at every
//!   [`RELOAD_EVERY`] and reloaded when they change: new connections get
//!   the new certificate, open ones keep theirs. A pair that does not load
//!   (half written, key not matching) is logged and the old one kept.
//! - [`Tls::Acme`]: certificates from an ACME CA (Let's Encrypt unless
//!   told otherwise) with rustls-acme, validated by TLS-ALPN-01 on the
//!   relay's own port (so it must be reachable as port 443 of each name),
//!   kept in a directory so a restart reuses them, renewed when two thirds
//!   of their life has passed.
//! - [`Tls::SelfSigned`]: for a trial on a LAN. A local CA is made once
//!   and kept in a directory (so a browser told to trust it keeps trusting
//!   it), and at each start a certificate from it for the machine's names
//!   and addresses.
//!
//! Every handshake has a deadline, and only so many may be in progress at
//! once (`server.rs`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// Let's Encrypt's production directory: the default for `--acme`.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// How often `--tls-cert` and `--tls-key` are looked at for a change.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// Where the relay's certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tls {
    /// PEM files: the chain (leaf first) and its private key.
    Files { cert: PathBuf, key: PathBuf },
    /// An ACME CA.
    Acme {
        /// The names to get a certificate for (the first is printed as the
        /// address to open).
        domains: Vec<String>,
        /// The CA's directory URL.
        directory: String,
        /// `mailto:` addresses the CA may write to about the account.
        contact: Vec<String>,
        /// PEM of the CA that signs the directory's own HTTPS certificate,
        /// when it is not a public one (a test CA such as pebble).
        directory_ca: Option<PathBuf>,
        /// Account and certificates, kept across restarts.
        dir: PathBuf,
    },
    /// A local CA kept in `dir`, and a certificate from it for this
    /// machine's names and addresses.
    SelfSigned { dir: PathBuf },
}

/// What the accept loop needs: the acceptor, and what to tell people.
pub(crate) struct Server {
    pub(crate) acceptor: TlsAcceptor,
    /// Whether responses carry Strict-Transport-Security (not for a
    /// self-signed trial: a browser would then refuse the name over plain
    /// HTTP for a year).
    pub(crate) hsts: bool,
    /// The name to open the app at.
    pub(crate) name: String,
    /// Keeps the certificate current (file watcher, ACME), run by `serve`.
    pub(crate) background: std::sync::Mutex<Option<futures_util::future::BoxFuture<'static, ()>>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("tls::Server")
            .field("hsts", &self.hsts)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    alpn: &[&[u8]],
) -> Result<ServerConfig, String> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

impl Server {
    /// Loads or makes the first certificate; an error says what is wrong.
    pub(crate) fn new(tls: &Tls) -> Result<Self, String> {
        match tls {
            Tls::Files { cert, key } => {
                let loaded = load_pair(cert, key)?;
                let name = first_name(&loaded.cert[0]).unwrap_or_else(|| "localhost".into());
                let current = Arc::new(Current(RwLock::new(Arc::new(loaded))));
                let config = server_config(current.clone(), &[b"http/1.1"])?;
                let background = watch_files(current, cert.clone(), key.clone());
                Ok(Self {
                    acceptor: TlsAcceptor::from(Arc::new(config)),
                    hsts: true,
                    name,
                    background: std::sync::Mutex::new(Some(background)),
                })
            }
            Tls::Acme {
                domains,
                directory,
                contact,
                directory_ca,
                dir,
            } => {
                if domains.is_empty() {
                    return Err("--acme needs a domain name".into());
                }
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot make --tls-dir {}: {e}", dir.display()))?;
                let mut acme = rustls_acme::AcmeConfig::new_with_provider(domains, provider())
                    .directory(directory)
                    .contact(contact.iter())
                    .cache(rustls_acme::caches::DirCache::new(dir.join("acme")));
                if let Some(ca) = directory_ca {
                    acme = acme.client_tls_config(Arc::new(client_trusting(ca)?));
                }
                let mut state = acme.state();
                let resolver = state.resolver();
                let config = server_config(
                    resolver,
                    &[b"http/1.1", rustls_acme::acme::ACME_TLS_ALPN_NAME],
                )?;
                let domains = domains.join(" ");
                let directory = directory.clone();
                let background = Box::pin(async move {
                    use futures_util::StreamExt;
                    tracing::info!(%domains, %directory, "ACME: getting a certificate (or the one kept)");
                    while let Some(event) = state.next().await {
                        match event {
                            Ok(ok) => tracing::info!(%domains, event = ?ok, "ACME"),
                            Err(err) => {
                                tracing::warn!(%domains, error = %err, "ACME: failed; trying again later")
                            }
                        }
                    }
                });
                Ok(Self {
                    acceptor: TlsAcceptor::from(Arc::new(config)),
                    hsts: true,
                    name: tls_name(tls),
                    background: std::sync::Mutex::new(Some(background)),
                })
            }
            Tls::SelfSigned { dir } => {
                let names = machine_names();
                let made = self_signed(dir, &names)?;
                let current = Arc::new(Current(RwLock::new(Arc::new(made))));
                let config = server_config(current, &[b"http/1.1"])?;
                Ok(Self {
                    acceptor: TlsAcceptor::from(Arc::new(config)),
                    hsts: false,
                    name: names
                        .dns
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "localhost".into()),
                    background: std::sync::Mutex::new(None),
                })
            }
        }
    }
}

/// The name `tls` serves, for the address to open (ACME's first domain).
fn tls_name(tls: &Tls) -> String {
    match tls {
        Tls::Acme { domains, .. } => domains.first().cloned().unwrap_or_default(),
        _ => "localhost".into(),
    }
}

/// Checks `tls` as the relay will use it (files read, the local CA made)
/// and gives the name to open the app at, for the start message; an error
/// says what is wrong, before anything listens.
pub fn check(tls: &Tls) -> Result<String, String> {
    Server::new(tls).map(|s| s.name)
}

/// Whether the handshake was an ACME TLS-ALPN-01 validation, which ends
/// with the handshake.
pub(crate) fn is_acme_challenge(conn: &rustls::ServerConnection) -> bool {
    conn.alpn_protocol() == Some(rustls_acme::acme::ACME_TLS_ALPN_NAME)
}

/// The certificate in use, swapped when the files change.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read --tls-cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--tls-cert {} is not PEM certificates: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("--tls-cert {} has no certificate", cert.display()));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "cannot read a private key from --tls-key {}: {e}",
            key.display()
        )
    })?;
    CertifiedKey::from_der(chain, der, &provider()).map_err(|e| {
        format!(
            "--tls-cert {} and --tls-key {} do not go together: {e}",
            cert.display(),
            key.display()
        )
    })
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Looks at the files every [`RELOAD_EVERY`] and swaps in a pair that
/// changed and loads.
fn watch_files(
    current: Arc<Current>,
    cert: PathBuf,
    key: PathBuf,
) -> futures_util::future::BoxFuture<'static, ()> {
    Box::pin(async move {
        let mut seen = (stamp(&cert), stamp(&key));
        let mut failed_for = None;
        loop {
            tokio::time::sleep(RELOAD_EVERY).await;
            let now = (stamp(&cert), stamp(&key));
            if now == seen || failed_for == Some(now) {
                continue;
            }
            match load_pair(&cert, &key) {
                Ok(loaded) => {
                    let name = first_name(&loaded.cert[0]).unwrap_or_default();
                    let until = not_after(&loaded.cert[0]);
                    *current.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
                    seen = now;
                    failed_for = None;
                    tracing::info!(cert = %cert.display(), %name, %until, "TLS: certificate reloaded; new connections get it");
                }
                Err(e) => {
                    // Perhaps half written: tried again when it changes.
                    failed_for = Some(now);
                    tracing::warn!("TLS: keeping the certificate in use: {e}");
                }
            }
        }
    })
}

/// A client config that trusts the CA in `pem` (for the ACME directory).
fn client_trusting(pem: &Path) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pem)
        .map_err(|e| format!("cannot read --acme-directory-ca {}: {e}", pem.display()))?
    {
        let cert = cert.map_err(|e| format!("--acme-directory-ca {}: {e}", pem.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("--acme-directory-ca {}: {e}", pem.display()))?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A certificate's first DNS name, for the address printed at start.
fn first_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::DNSName(name) => Some((*name).to_owned()),
        _ => None,
    })
}

/// When a certificate stops being valid, for the log.
fn not_after(cert: &CertificateDer<'_>) -> String {
    x509_parser::parse_x509_certificate(cert.as_ref())
        .map(|(_, c)| c.validity().not_after.to_string())
        .unwrap_or_default()
}

/// This machine's names and addresses, for a self-signed certificate.
#[derive(Debug)]
pub(crate) struct Names {
    pub(crate) dns: Vec<String>,
    pub(crate) ips: Vec<IpAddr>,
}

pub(crate) fn machine_names() -> Names {
    let mut dns = Vec::new();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    if !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        dns.push(host.to_ascii_lowercase());
        if !host.contains('.') {
            dns.push(format!("{}.local", host.to_ascii_lowercase()));
        }
    }
    dns.push("localhost".into());
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|ifs| ifs.iter().map(|i| i.ip()).collect())
        .unwrap_or_default();
    for ip in [
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ] {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips.sort();
    ips.dedup();
    Names { dns, ips }
}

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";

fn ca_params() -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "peercall relay local CA");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "peercall");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    params
}

/// Makes (or reuses) the local CA in `dir` and a certificate from it for
/// `names`, valid 90 days.
fn self_signed(dir: &Path, names: &Names) -> Result<CertifiedKey, String> {
    let err = |what: &str, e: &dyn std::fmt::Display| format!("--tls-self-signed: {what}: {e}");
    std::fs::create_dir_all(dir).map_err(|e| err(&format!("cannot make {}", dir.display()), &e))?;
    let (ca_cert, ca_key) = (dir.join(CA_CERT), dir.join(CA_KEY));
    let ca_key_pair = match std::fs::read_to_string(&ca_key) {
        Ok(pem) => rcgen::KeyPair::from_pem(&pem)
            .map_err(|e| err(&format!("{} is not a key", ca_key.display()), &e))?,
        Err(_) => {
            let key = rcgen::KeyPair::generate().map_err(|e| err("making a key", &e))?;
            let cert = ca_params()
                .self_signed(&key)
                .map_err(|e| err("making the CA", &e))?;
            write_private(&ca_key, key.serialize_pem().as_bytes())
                .map_err(|e| err(&format!("cannot write {}", ca_key.display()), &e))?;
            std::fs::write(&ca_cert, cert.pem())
                .map_err(|e| err(&format!("cannot write {}", ca_cert.display()), &e))?;
            key
        }
    };
    // Signing needs the CA's name and key only: the certificate made here
    // has the name and key of the one kept in ca.pem, which browsers trust.
    let ca = ca_params()
        .self_signed(&ca_key_pair)
        .map_err(|e| err("loading the CA", &e))?;
    let mut sans: Vec<rcgen::SanType> = Vec::new();
    for name in &names.dns {
        sans.push(rcgen::SanType::DnsName(
            name.as_str().try_into().map_err(|e| err(name, &e))?,
        ));
    }
    sans.extend(names.ips.iter().map(|ip| rcgen::SanType::IpAddress(*ip)));
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = sans;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        names.dns.first().map_or("localhost", String::as_str),
    );
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(90);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().map_err(|e| err("making a key", &e))?;
    let leaf = params
        .signed_by(&key, &ca, &ca_key_pair)
        .map_err(|e| err("signing", &e))?;
    let kept = std::fs::read(&ca_cert)
        .map_err(|e| err(&format!("cannot read {}", ca_cert.display()), &e))?;
    let kept = CertificateDer::from_pem_slice(&kept)
        .map_err(|e| err(&format!("{} is not a certificate", ca_cert.display()), &e))?;
    let chain = vec![leaf.der().clone(), kept];
    let der = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| err("key", &e))?;
    CertifiedKey::from_der(chain, der, &provider()).map_err(|e| err("certificate", &e))
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(data)
}

/// The local CA's certificate, for the start message.
pub fn ca_file(dir: &Path) -> PathBuf {
    dir.join(CA_CERT)
}
