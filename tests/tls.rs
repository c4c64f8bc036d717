//! The worker and the command line over `amqps://`: the broker's certificate checked against a
//! CA file, a client certificate shown when the broker asks, and clear refusals when the
//! certificates are wrong or given beside a plain URL. The broker is the local one, with a TLS
//! listener the test adds ([`common::tls`]).

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;

use common::broker::{assert_all_valid, Client, Vhost, Worker};
use common::tls::{tls_connections, TlsListener};
use common::{inline_job, Emulator};

/// Runs `wecom-archive topology apply` (one connection, then exit) with these settings.
fn topology_apply(url: &str, env: &[(&str, &std::path::Path)]) -> Output {
    Command::new(common::cli())
        .args(["topology", "apply"])
        .env("WECOM_AMQP_URL", url)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_does_its_jobs_over_amqps_with_a_client_certificate() {
    let (vhost, emulator, tls) = (Vhost::new(), Emulator::default_corp(), TlsListener::start());
    let certs = &tls.certificates;
    let (ca, cert, key) = (
        certs.path("ca.pem"),
        certs.path("client.pem"),
        certs.path("client.key"),
    );
    let url = tls.url(&vhost.name);
    let worker = Worker::start_with_env(
        &vhost,
        &emulator,
        &[],
        &[
            ("WECOM_AMQP_URL", url.as_str()),
            ("WECOM_AMQP_CA_FILE", ca.to_str().unwrap()),
            ("WECOM_AMQP_CLIENT_CERT", cert.to_str().unwrap()),
            ("WECOM_AMQP_CLIENT_KEY", key.to_str().unwrap()),
        ],
    );
    let connections = tls_connections(&vhost.name);
    assert_eq!(connections.len(), 2, "consume and publish: {connections:?}");
    for (is_tls, subject) in &connections {
        assert!(is_tls, "{connections:?}");
        assert!(subject.contains("CN=client"), "{connections:?}");
    }

    let client = Client::connect(&vhost).await;
    let job = inline_job(json!({"job_id": "over-tls", "limit": 3}));
    client.submit("fetch-chatdata", &job).await;
    let results = client
        .take("chatdata-results", 1, Duration::from_secs(30))
        .await;
    assert_all_valid(&results);
    assert_eq!(
        (
            results[0].body["job_id"].as_str(),
            results[0].body["status"].as_str()
        ),
        (Some("over-tls"), Some("ok"))
    );
    let key_body = certs.text("client.key");
    let key_line = key_body.lines().nth(1).unwrap();
    assert!(!worker.log_text().contains(key_line));
}

#[test]
fn the_broker_refuses_a_client_without_its_certificate() {
    let (vhost, tls) = (Vhost::new(), TlsListener::start());
    let ca = tls.certificates.path("ca.pem");
    let refused = topology_apply(&tls.url(&vhost.name), &[("WECOM_AMQP_CA_FILE", &ca)]);
    assert!(!refused.status.success());
    // TLS 1.3 refuses a missing client certificate after the handshake: the client sees the
    // broker's alert or a reset connection, whichever comes first.
    let message = stderr(&refused);
    assert!(
        message.contains("cannot connect to the broker")
            && (message.contains("CertificateRequired") || message.contains("reset by peer")),
        "{message}"
    );

    let (cert, key) = (
        tls.certificates.path("client.pem"),
        tls.certificates.path("client.key"),
    );
    let accepted = topology_apply(
        &tls.url(&vhost.name),
        &[
            ("WECOM_AMQP_CA_FILE", &ca),
            ("WECOM_AMQP_CLIENT_CERT", &cert),
            ("WECOM_AMQP_CLIENT_KEY", &key),
        ],
    );
    assert!(accepted.status.success(), "{}", stderr(&accepted));
}

#[test]
fn a_broker_certificate_from_another_ca_is_refused() {
    let (vhost, tls) = (Vhost::new(), TlsListener::start());
    let certs = &tls.certificates;
    let refused = topology_apply(
        &tls.url(&vhost.name),
        &[
            ("WECOM_AMQP_CA_FILE", &certs.path("other-ca.pem")),
            ("WECOM_AMQP_CLIENT_CERT", &certs.path("client.pem")),
            ("WECOM_AMQP_CLIENT_KEY", &certs.path("client.key")),
        ],
    );
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("cannot connect to the broker") && message.contains("UnknownIssuer"),
        "{message}"
    );
}

#[test]
fn broker_settings_that_cannot_be_used_stop_the_command_without_quoting_secrets() {
    let certs = common::tls::Certificates::generate();
    let plain = "amqp://guest:guest@127.0.0.1:5672/%2f";
    let tls = "amqps://guest:guest@127.0.0.1:5671/%2f";
    let bad_key = certs.path("bad.key");
    // A damaged key: the parser's error would quote the bad line.
    let key_text = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0*a2V5\n-----END PRIVATE KEY-----\n";
    std::fs::write(&bad_key, key_text).unwrap();
    // Not a base URL: the URL parser's own error would quote it, password included.
    let malformed = "amqps:guest:s3cr3t@127.0.0.1/%2f";
    let cases = [
        (
            malformed,
            vec![],
            "the broker URL is not a valid amqp:// or amqps:// URL",
        ),
        (
            plain,
            vec![("WECOM_AMQP_CA_FILE", certs.path("ca.pem"))],
            "the broker URL is not amqps://",
        ),
        (
            tls,
            vec![("WECOM_AMQP_CA_FILE", certs.path("missing.pem"))],
            "cannot read the CA file",
        ),
        (
            tls,
            vec![("WECOM_AMQP_CA_FILE", certs.path("client.key"))],
            "holds no certificate",
        ),
        (
            tls,
            vec![
                ("WECOM_AMQP_CLIENT_CERT", certs.path("client.pem")),
                ("WECOM_AMQP_CLIENT_KEY", bad_key.clone()),
            ],
            "holds no PEM private key",
        ),
    ];
    for (url, env, expected) in cases {
        let env: Vec<(&str, &std::path::Path)> =
            env.iter().map(|(k, v)| (*k, v.as_path())).collect();
        let output = topology_apply(url, &env);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{message}");
        assert!(message.contains(expected), "{expected:?} in {message}");
        assert!(
            !message.contains("c2VjcmV0") && !message.contains("s3cr3t"),
            "{message}"
        );
    }
}
