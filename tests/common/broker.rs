//! The broker side of the harness: a vhost per test on the local RabbitMQ, the real worker
//! binary as a separate process, and helpers to publish jobs and collect what comes back.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::Value;

use super::{service, Emulator};

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

/// A vhost of its own for one test, deleted when dropped.
pub struct Vhost {
    pub name: String,
}

impl Vhost {
    pub fn new() -> Self {
        let name = format!("wecom-test-{}", uuid::Uuid::new_v4());
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        Self { name }
    }

    /// Deletes the vhost (its connections close), as an outage looks to a worker of it.
    pub fn delete(&self) {
        rabbitmqctl(&["delete_vhost", &self.name]);
    }

    /// Makes the vhost again after [`Vhost::delete`], empty.
    pub fn recreate(&self) {
        rabbitmqctl(&["add_vhost", &self.name]);
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &self.name,
            "guest",
            ".*",
            ".*",
            ".*",
        ]);
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:5672/{}", self.name)
    }

    /// Runs the command line against this vhost, to the end.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(super::cli())
            .args(args)
            .env("WECOM_AMQP_URL", self.url())
            .output()
            .expect("the command line runs")
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The worker binary, running against a vhost and an emulator.
pub struct Worker {
    pub child: Child,
    pub log: PathBuf,
    pub media_dir: PathBuf,
}

impl Worker {
    /// Starts `wecom-archive worker` with short retry delays and waits until it consumes.
    pub fn start(vhost: &Vhost, emulator: &Emulator, extra: &[&str]) -> Self {
        Self::start_with_env(vhost, emulator, extra, &[])
    }

    /// As [`Worker::start`], with more environment variables.
    pub fn start_with_env(
        vhost: &Vhost,
        emulator: &Emulator,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_url(&vhost.url(), emulator, extra, env)
    }

    /// As [`Worker::start_with_env`], against the broker (or nodes) of `url`.
    pub fn start_url(url: &str, emulator: &Emulator, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let env: Vec<(&str, &str)> = [("WECOM_AMQP_URL", url)]
            .into_iter()
            .chain(env.iter().copied())
            .collect();
        let (child, log) = service::spawn("worker", emulator, extra, &env);
        let worker = Self {
            child,
            log,
            media_dir: emulator.dir.path().join("media"),
        };
        worker.wait_for_log("consuming", Duration::from_secs(20));
        worker
    }

    pub fn log_text(&self) -> String {
        service::log_text(&self.log)
    }

    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        service::wait_for_log(&self.log, needle, timeout);
    }

    /// The address it logged after `prefix` (its metrics listener's, say), once it has.
    pub fn logged_address(&self, prefix: &str) -> String {
        service::address_in_log(&self.log, prefix, Duration::from_secs(10))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test's AMQP client: publishes with confirms, reads queues.
pub struct Client {
    pub connection: Connection,
    pub channel: Channel,
}

impl Client {
    pub async fn connect(vhost: &Vhost) -> Self {
        Self::connect_url(&vhost.url()).await
    }

    /// A client of the broker at `url` (a test cluster's node, say).
    pub async fn connect_url(url: &str) -> Self {
        Self::try_connect_url(url)
            .await
            .expect("the broker answers")
    }

    pub async fn try_connect_url(url: &str) -> lapin::Result<Self> {
        let connection = Connection::connect(url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            connection,
            channel,
        })
    }

    /// Publishes a job body to the jobs exchange and waits for the confirm.
    pub async fn publish_job(&self, kind: &str, body: &[u8], properties: BasicProperties) {
        let confirm = self
            .channel
            .basic_publish(
                "wecom.jobs".into(),
                kind.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties.with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(
            confirm.is_ack() && confirm.take_message().is_none(),
            "the job was not routed"
        );
    }

    /// Publishes a JSON job with no properties of its own.
    pub async fn submit(&self, kind: &str, job: &Value) {
        let body = serde_json::to_vec(job).unwrap();
        self.publish_job(kind, &body, BasicProperties::default())
            .await;
    }

    /// Takes (and acks) up to `count` messages from `queue`, waiting up to `timeout` for them.
    pub async fn take(&self, queue: &str, count: usize, timeout: Duration) -> Vec<Received> {
        self.try_take(queue, count, timeout).await.unwrap()
    }

    /// As [`Client::take`], with the broker's errors (a node down) for the caller to handle.
    pub async fn try_take(
        &self,
        queue: &str,
        count: usize,
        timeout: Duration,
    ) -> lapin::Result<Vec<Received>> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        // Messages taken are acked at once, so they are the caller's even if a later step
        // fails (a node stopped under the connection): then they are returned, and the next
        // call reports the error. A message whose ack failed was not taken: it goes back.
        let keep_or = |got: Vec<Received>, err: lapin::Error| {
            if got.is_empty() {
                Err(err)
            } else {
                Ok(got)
            }
        };
        while got.len() < count && Instant::now() < deadline {
            let message = match self
                .channel
                .basic_get(queue.into(), BasicGetOptions::default())
                .await
            {
                Ok(message) => message,
                Err(err) => return keep_or(got, err),
            };
            match message {
                Some(message) => {
                    let delivery = message.delivery;
                    if let Err(err) = delivery.ack(BasicAckOptions::default()).await {
                        return keep_or(got, err);
                    }
                    got.push(Received {
                        body: serde_json::from_slice(&delivery.data).unwrap_or(Value::Null),
                        raw: delivery.data,
                        properties: delivery.properties,
                    });
                }
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        Ok(got)
    }

    /// How many messages `queue` holds now.
    pub async fn depth(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .unwrap()
            .message_count()
    }
}

/// A message read from a queue.
pub struct Received {
    pub body: Value,
    pub raw: Vec<u8>,
    pub properties: BasicProperties,
}

/// Validates every published message against its schema (see [`super::schemas`]).
pub fn assert_all_valid(messages: &[Received]) {
    for message in messages {
        let schema = super::schemas::schema_for(&message.body);
        super::schemas::assert_valid(schema, &message.body);
    }
}
