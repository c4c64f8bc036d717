//! `docker-compose.yml` and the `Dockerfile`, read as files: every command they run is one the
//! binary has, every `WECOM_*` variable they set (or show in a comment) is one the binary reads,
//! and the binary accepts their values. `scripts/compose-test` runs them for real, with podman.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

/// Variables read outside the command line's flags: by `main` (logs) or by glibc.
const READ_ELSEWHERE: [&str; 3] = ["RUST_LOG", "WECOM_LOG_FORMAT", "MALLOC_ARENA_MAX"];

fn project_file(name: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

/// A variable a service of the compose file sets.
struct Setting {
    service: String,
    name: String,
    value: String,
    /// Whether the line is an example in a comment.
    commented: bool,
}

/// `NAME: value` lines of every service's `environment:` in the compose file, commented
/// examples included.
fn compose_environment() -> Vec<Setting> {
    let compose = project_file("docker-compose.yml");
    let mut found = Vec::new();
    let mut service = String::new();
    for line in compose.lines() {
        // Services are the keys indented by two spaces under `services:`.
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) {
            if !name.starts_with(' ') && !name.starts_with('#') {
                service = name.to_owned();
            }
        }
        let trimmed = line.trim_start();
        let (commented, rest) = match trimmed.strip_prefix("# ") {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        if let Some((name, value)) = rest.split_once(": ") {
            let is_variable = name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                && (name.starts_with("WECOM_") || READ_ELSEWHERE.contains(&name));
            if is_variable {
                found.push(Setting {
                    service: service.clone(),
                    name: name.to_owned(),
                    value: value.trim().trim_matches('"').to_owned(),
                    commented,
                });
            }
        }
    }
    found
}

/// The command each service of ours runs: `(service, subcommand)`.
const SERVICES: [(&str, &str); 2] = [("worker", "worker"), ("gateway", "serve")];

/// `ENV NAME=value` pairs of the Dockerfile, continuation lines included.
fn dockerfile_env() -> Vec<(String, String)> {
    let dockerfile = project_file("Dockerfile");
    let joined = dockerfile.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|line| line.strip_prefix("ENV "))
        .flat_map(|pairs| {
            pairs
                .split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The variables the flags of `subcommand` read, from its help.
fn variables_of(subcommand: &str) -> Vec<String> {
    let help = Command::new(common::cli())
        .args([subcommand, "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    String::from_utf8_lossy(&help.stdout)
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split(['=', ']']).next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_variable_the_deployment_files_set_is_one_the_binary_reads() {
    let compose = compose_environment();
    for (service, subcommand) in SERVICES {
        let known = variables_of(subcommand);
        assert!(known.contains(&"WECOM_MEDIA_DIR".to_owned()), "{known:?}");
        let names: Vec<&str> = compose
            .iter()
            .filter(|setting| setting.service == service)
            .map(|setting| setting.name.as_str())
            .collect();
        assert!(names.len() >= 6, "{service}: {names:?}");
        for name in names {
            assert!(
                known.iter().any(|k| k == name) || READ_ELSEWHERE.contains(&name),
                "{name} is set for {service} but read by nothing"
            );
        }
    }
    // The image's environment is every service's.
    let worker = variables_of("worker");
    for (name, _) in dockerfile_env() {
        assert!(
            worker.contains(&name) || READ_ELSEWHERE.contains(&name.as_str()),
            "{name} is set by the Dockerfile but read by nothing"
        );
    }
}

/// The image's environment with the compose file's settings for `service` over it.
fn service_environment(service: &str) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = dockerfile_env().into_iter().collect();
    for setting in compose_environment() {
        if setting.service == service && !setting.commented {
            env.insert(setting.name, setting.value);
        }
    }
    env
}

#[test]
fn the_binary_accepts_the_deployment_files_values_and_commands() {
    let compose = project_file("docker-compose.yml");
    assert!(compose.contains(r#"command: ["worker"]"#));
    assert!(compose.contains(r#"command: ["serve"]"#));
    let dockerfile = project_file("Dockerfile");
    assert!(dockerfile.contains(r#"ENTRYPOINT ["wecom-archive"]"#));
    assert!(dockerfile.contains(r#"CMD ["worker"]"#));

    // The worker with exactly the compose file's environment (and the image's): it must get
    // past reading its settings, and stop only where this machine differs from the container
    // (there is no library at /opt/wecom).
    let mut env = service_environment("worker");
    let media = tempfile::tempdir().unwrap();
    env.insert("WECOM_MEDIA_DIR".into(), media.path().display().to_string());
    let run = Command::new(common::cli())
        .arg("worker")
        .env_clear()
        .envs(&env)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    for clap_error in ["invalid value", "unexpected argument", "required arguments"] {
        assert!(!stderr.contains(clap_error), "{stderr}");
    }
    assert!(
        stderr.contains("/opt/wecom/libWeWorkFinanceSdk_C.so"),
        "it stopped at the missing library: {stderr}"
    );

    // The gateway with its environment gets as far as listening (on a free loopback port here;
    // its broker, the compose network's rabbitmq, is out of reach and tried in the background).
    let mut env = service_environment("gateway");
    assert_eq!(
        env.get("WECOM_HTTP_VIA_BROKER").map(String::as_str),
        Some("true")
    );
    env.insert("WECOM_HTTP_LISTEN".into(), "127.0.0.1:0".into());
    let log = media.path().join("gateway.log");
    let mut gateway = Command::new(common::cli())
        .arg("serve")
        .env_clear()
        .envs(&env)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let stderr = loop {
        let stderr = std::fs::read_to_string(&log).unwrap();
        if stderr.contains("gateway listening") || gateway.try_wait().unwrap().is_some() {
            break stderr;
        }
        assert!(std::time::Instant::now() < deadline, "{stderr}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = gateway.kill();
    let _ = gateway.wait();
    assert!(stderr.contains("gateway listening"), "{stderr}");
}
