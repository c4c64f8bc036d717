//! Connecting to the broker: the URLs from [`BrokerConfig`] (one, or a cluster's nodes), tried in
//! a shuffled order at every connect so that a node that is down is skipped at once and the
//! workers spread over the others; the heartbeat that notices a dead or frozen node within
//! seconds; the publish confirm timeout; and, for `amqps://`, the certificates that are trusted
//! besides the system's and the client certificate the worker shows.
//!
//! A [`Broker`] is built once at start, so that a malformed URL, or a missing or malformed
//! certificate file, stops the command at once (with the file's path, never the URL), instead of
//! surfacing as a connection that never comes up (the worker retries lost connections forever).
//! Every connection of a command, the worker's reconnections included, uses the same one. It
//! derives no `Debug`: it holds the URL, which may carry a password, and the client's private key
//! (kept as lapin takes it: a plain buffer, not zeroized, since lapin copies it into every
//! connection anyway).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties, DefaultConnectionBuilder};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use rand::seq::SliceRandom;

use super::publisher::Publisher;
use super::signing::HeaderKey;
use crate::config::BrokerConfig;

/// How long a TCP and AMQP handshake with one node may take before the next one is tried.
const CONNECT_TIMEOUT_MS: u64 = 3_000;

/// Where and how to connect.
pub struct Broker {
    /// The nodes, all with the same scheme, user and vhost (one for a single broker).
    uris: Vec<AMQPUri>,
    tls: OwnedTLSConfig,
    confirm_timeout: Duration,
    /// The node of the last connection made, and one to try last (it failed a session).
    nodes_seen: Mutex<NodesSeen>,
}

#[derive(Default)]
struct NodesSeen {
    last_connected: Option<usize>,
    demoted: Option<usize>,
}

impl Broker {
    /// Parses the URLs and reads and checks the certificate files named in `args`.
    pub fn from_args(args: &BrokerConfig) -> anyhow::Result<Self> {
        let urls: Vec<&str> = args
            .amqp_url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .collect();
        if urls.is_empty() {
            bail!("no broker URL is given");
        }
        let mut uris = Vec::with_capacity(urls.len());
        for (at, url) in urls.iter().enumerate() {
            // Parsed here rather than at each connection, and with an error of our own: the
            // parser's error quotes the URL, password included.
            let mut uri: AMQPUri = url.parse().map_err(|_| match urls.len() {
                1 => anyhow::anyhow!("the broker URL is not a valid amqp:// or amqps:// URL"),
                n => anyhow::anyhow!(
                    "broker URL {} of {n} is not a valid amqp:// or amqps:// URL",
                    at + 1
                ),
            })?;
            // A URL's own `?heartbeat=` or `?connection_timeout=` wins.
            uri.query.heartbeat.get_or_insert(args.amqp_heartbeat_secs);
            uri.query
                .connection_timeout
                .get_or_insert(CONNECT_TIMEOUT_MS);
            uris.push(uri);
        }
        let uri = &uris[0];
        let same_cluster = uris.iter().all(|other| {
            other.scheme == uri.scheme
                && other.vhost == uri.vhost
                && other.authority.userinfo == uri.authority.userinfo
        });
        if !same_cluster {
            bail!(
                "the broker URLs differ in scheme, user, password or vhost: they must be nodes \
                 of one cluster"
            );
        }
        let wants_tls = args.amqp_ca_file.is_some() || args.amqp_client_cert.is_some();
        if wants_tls && uri.scheme != AMQPScheme::AMQPS {
            // Certificates beside a plain URL would leave the operator believing the traffic
            // is encrypted while it is not.
            bail!("certificate files are given but the broker URL is not amqps://");
        }
        let cert_chain = args
            .amqp_ca_file
            .as_deref()
            .map(|path| read_certificates(path, "CA file"))
            .transpose()?;
        let identity = match (&args.amqp_client_cert, &args.amqp_client_key) {
            (Some(cert), Some(key)) => Some(read_identity(cert, key)?),
            (None, None) => None,
            _ => bail!("a client certificate needs its key, and a key its certificate"),
        };
        Ok(Self {
            tls: OwnedTLSConfig {
                identity,
                cert_chain,
            },
            uris,
            confirm_timeout: Duration::from_secs(args.amqp_confirm_timeout_secs.max(1)),
            nodes_seen: Mutex::default(),
        })
    }

    /// The key of the deployment's header signatures: `explicit`, else one derived from the
    /// broker user, password and vhost (the same for every worker of a deployment, whichever
    /// host each connects to).
    pub fn header_key(&self, explicit: Option<&secrecy::SecretString>) -> HeaderKey {
        let uri = &self.uris[0];
        let user = &uri.authority.userinfo;
        HeaderKey::new(explicit, &user.username, &user.password, &uri.vhost)
    }

    /// Opens a connection named `name` (the name shows in the broker's management UI) to the
    /// first node that takes it, the nodes tried in a shuffled order.
    pub async fn connect(&self, name: &str) -> anyhow::Result<Connection> {
        let mut nodes: Vec<usize> = (0..self.uris.len()).collect();
        nodes.shuffle(&mut rand::thread_rng());
        let (last, demoted) = {
            let seen = self.nodes_seen.lock().expect("not poisoned");
            (seen.last_connected, seen.demoted)
        };
        // A node that failed a session goes last (a frozen one still takes TCP); otherwise the
        // node of the last connection goes first, so that a session's connections share a node.
        nodes.sort_by_key(|&node| (Some(node) == demoted, Some(node) != last));
        let mut refused = Vec::new();
        for at in nodes {
            let uri = &self.uris[at];
            let node = format!("{}:{}", uri.authority.host, uri.authority.port);
            let connected = DefaultConnectionBuilder::new()?
                .with_uri(uri.clone())
                .with_properties(ConnectionProperties::default().with_connection_name(name.into()))
                .with_tls_config(self.tls.clone())
                .connect()
                .await;
            match connected {
                Ok(connection) => {
                    self.nodes_seen.lock().expect("not poisoned").last_connected = Some(at);
                    if !refused.is_empty() {
                        tracing::info!(node, skipped = refused.len(), "connected ({name})");
                    }
                    return Ok(connection);
                }
                Err(err) => refused.push(format!("{node}: {err}")),
            }
        }
        bail!(
            "cannot connect to the broker ({name}): {}",
            refused.join("; ")
        )
    }

    /// Makes the node of the last connection the one tried last from now on (until another
    /// is demoted): it failed a session.
    pub fn demote_last_node(&self) {
        let mut seen = self.nodes_seen.lock().expect("not poisoned");
        seen.demoted = seen.last_connected;
    }

    /// A confirming publisher on `connection`, with this broker's confirm timeout.
    pub async fn publisher(&self, connection: &Arc<Connection>) -> lapin::Result<Publisher> {
        Publisher::open(connection, self.confirm_timeout).await
    }
}

/// The PEM certificates in `path` (`what` names the file in errors), checked to hold one or more.
fn read_certificates(path: &Path, what: &str) -> anyhow::Result<String> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?;
    let count = CertificateDer::pem_slice_iter(pem.as_bytes())
        .try_fold(0, |count, cert| cert.map(|_| count + 1))
        .with_context(|| format!("the {what} {} is not valid PEM", path.display()))?;
    if count == 0 {
        bail!("the {what} {} holds no certificate", path.display());
    }
    Ok(pem)
}

/// The client certificate chain and its private key, both PEM.
fn read_identity(cert: &Path, key: &Path) -> anyhow::Result<OwnedIdentity> {
    let cert_pem = read_certificates(cert, "client certificate")?;
    let key_pem = std::fs::read(key)
        .with_context(|| format!("cannot read the client key {}", key.display()))?;
    // The parser's error is dropped: it may quote a line of the key file.
    if PrivateKeyDer::from_pem_slice(&key_pem).is_err() {
        bail!("the client key {} holds no PEM private key", key.display());
    }
    Ok(OwnedIdentity::PKCS8 {
        pem: cert_pem.into_bytes(),
        key: key_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(urls: &str) -> BrokerConfig {
        BrokerConfig {
            amqp_url: urls.to_owned(),
            amqp_heartbeat_secs: 5,
            amqp_confirm_timeout_secs: 15,
            amqp_ca_file: None,
            amqp_client_cert: None,
            amqp_client_key: None,
        }
    }

    #[test]
    fn a_list_of_nodes_must_be_one_cluster_and_gets_the_heartbeat() {
        let broker = Broker::from_args(&args(
            "amqp://u:p@a:5672/v, amqp://u:p@b:5673/v,amqp://u:p@c:5674/v?heartbeat=30",
        ))
        .unwrap();
        let heartbeats: Vec<_> = broker.uris.iter().map(|u| u.query.heartbeat).collect();
        assert_eq!(heartbeats, [Some(5), Some(5), Some(30)]);
        for other in [
            "amqp://u:p@a/v,amqp://u:p@b/w",
            "amqp://u:p@a/v,amqp://x:p@b/v",
            "amqp://u:p@a/v,amqps://u:p@b/v",
        ] {
            let err = Broker::from_args(&args(other))
                .err()
                .expect(other)
                .to_string();
            assert!(err.contains("nodes of one cluster"), "{err}");
            assert!(!err.contains(":p@"), "the password stays out: {err}");
        }
        let err = Broker::from_args(&args("amqp://u:secret@a/v,nonsense"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("URL 2 of 2") && !err.contains("secret"),
            "{err}"
        );
    }
}
