//! Connecting to the broker: the URL from [`AmqpArgs`] and, for `amqps://`, the certificates
//! that are trusted besides the system's and the client certificate the worker shows.
//!
//! A [`Broker`] is built once at start, so that a malformed URL, or a missing or malformed
//! certificate file, stops the command at once (with the file's path, never the URL), instead of
//! surfacing as a connection that never comes up (the worker retries lost connections forever).
//! Every connection of a command, the worker's reconnections included, uses the same one. It
//! derives no `Debug`: it holds the URL, which may carry a password, and the client's private key
//! (kept as lapin takes it: a plain buffer, not zeroized, since lapin copies it into every
//! connection anyway).

use std::path::Path;

use anyhow::{bail, Context};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties, DefaultConnectionBuilder};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::config::AmqpArgs;
use super::signing::HeaderKey;

/// Where and how to connect.
pub struct Broker {
    uri: AMQPUri,
    tls: OwnedTLSConfig,
}

impl Broker {
    /// Parses the URL and reads and checks the certificate files named in `args`.
    pub fn from_args(args: &AmqpArgs) -> anyhow::Result<Self> {
        // Parsed here rather than at each connection, and with an error of our own: the
        // parser's error quotes the URL, password included.
        let uri: AMQPUri = args.amqp_url.parse().map_err(|_| {
            anyhow::anyhow!("the broker URL is not a valid amqp:// or amqps:// URL")
        })?;
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
            uri,
            tls: OwnedTLSConfig {
                identity,
                cert_chain,
            },
        })
    }

    /// The key of the deployment's header signatures: `explicit`, else one derived from the
    /// broker user, password and vhost (the same for every worker of a deployment, whichever
    /// host each connects to).
    pub fn header_key(&self, explicit: Option<&secrecy::SecretString>) -> HeaderKey {
        let user = &self.uri.authority.userinfo;
        HeaderKey::new(explicit, &user.username, &user.password, &self.uri.vhost)
    }

    /// Opens a connection named `name` (the name shows in the broker's management UI).
    pub async fn connect(&self, name: &str) -> anyhow::Result<Connection> {
        DefaultConnectionBuilder::new()?
            .with_uri(self.uri.clone())
            .with_properties(ConnectionProperties::default().with_connection_name(name.into()))
            .with_tls_config(self.tls.clone())
            .connect()
            .await
            .with_context(|| format!("cannot connect to the broker ({name})"))
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
