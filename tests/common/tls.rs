//! A TLS listener on the local broker, with certificates made for one test.
//!
//! The listener is added to the running broker (`rabbit_networking:start_ssl_listener` through
//! `rabbitmqctl eval`) on a free port of its own and removed when dropped, so tests need no
//! broker configuration and no restart, and the plain listener other tests use is untouched.
//! The broker requires a client certificate signed by the test's CA.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The PEM files of one test: a CA, the broker's certificate, a client's, and an unrelated CA.
pub struct Certificates {
    pub dir: tempfile::TempDir,
}

impl Certificates {
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // The broker runs as its own user and must read its certificate and key.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        };
        let ca = new_ca("wecom-archive test CA");
        write("ca.pem", ca.pem());
        write("other-ca.pem", new_ca("an unrelated CA").pem());
        for (name, sans, purpose) in [
            (
                "server",
                vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            (
                "client",
                vec!["wecom-archive-worker".to_owned()],
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
        ] {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(sans).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages.push(purpose);
            params.use_authority_key_identifier_extension = true;
            let cert = params.signed_by(&key, &ca).unwrap();
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        }
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn text(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A TLS listener on 127.0.0.1, removed from the broker when dropped.
pub struct TlsListener {
    pub port: u16,
    pub certificates: Certificates,
}

impl TlsListener {
    pub fn start() -> Self {
        let certificates = Certificates::generate();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let file = |name: &str| certificates.path(name).display().to_string();
        let expression = format!(
            r#"rabbit_networking:ensure_ssl(),
               rabbit_networking:start_ssl_listener({{"127.0.0.1", {port}}},
                   [{{cacertfile, "{ca}"}}, {{certfile, "{cert}"}}, {{keyfile, "{key}"}},
                    {{verify, verify_peer}}, {{fail_if_no_peer_cert, true}}], 1, 1)."#,
            ca = file("ca.pem"),
            cert = file("server.pem"),
            key = file("server.key"),
        );
        eval(&expression);
        Self { port, certificates }
    }

    /// The amqps:// URL of `vhost` on this listener.
    pub fn url(&self, vhost: &str) -> String {
        format!("amqps://guest:guest@127.0.0.1:{}/{vhost}", self.port)
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A second panic would abort the test and hide the first failure; the listener
            // goes with the broker's next restart.
            return;
        }
        eval(&format!(
            r#"rabbit_networking:stop_tcp_listener({{"127.0.0.1", {}}})."#,
            self.port
        ));
    }
}

fn eval(expression: &str) {
    let output = Command::new("rabbitmqctl")
        .args(["eval", expression])
        .output()
        .expect("rabbitmqctl runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim() == "ok",
        "rabbitmqctl eval {expression}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Each connection the broker has in `vhost`: whether it is TLS, and its client certificate's
/// subject.
pub fn tls_connections(vhost: &str) -> Vec<(bool, String)> {
    let output = Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "-q",
            "--no-table-headers",
            "vhost",
            "ssl",
            "peer_cert_subject",
        ])
        .output()
        .expect("rabbitmqctl runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut columns = line.split('\t');
            (columns.next()? == vhost).then(|| {
                let ssl = columns.next() == Some("true");
                (ssl, columns.next().unwrap_or_default().to_owned())
            })
        })
        .collect()
}
