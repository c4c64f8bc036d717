//! `docker-compose.yml` and the `Dockerfile` cannot be run here (no Docker daemon), so what can
//! be checked without Docker is: every command they run is one the binary has, every `WECOM_*`
//! variable they set (or show in a comment) is one the binary reads, and the binary accepts
//! their values.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

/// Variables read outside the command line's flags: by `main` (logs) or by glibc.
const READ_ELSEWHERE: [&str; 3] = ["RUST_LOG", "WECOM_LOG_FORMAT", "MALLOC_ARENA_MAX"];

fn project_file(name: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

/// `NAME: value` lines of the worker's `environment:` in the compose file; `commented` says
/// whether a line is an example in a comment.
fn compose_environment() -> Vec<(String, String, bool)> {
    let compose = project_file("docker-compose.yml");
    let mut found = Vec::new();
    for line in compose.lines() {
        let trimmed = line.trim_start();
        let (commented, rest) = match trimmed.strip_prefix("# ") {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        if let Some((name, value)) = rest.split_once(": ") {
            let is_variable = name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                && (name.starts_with("WECOM_") || READ_ELSEWHERE.contains(&name));
            if is_variable {
                found.push((
                    name.to_owned(),
                    value.trim().trim_matches('"').to_owned(),
                    commented,
                ));
            }
        }
    }
    found
}

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

/// The variables the worker's flags read, from its help.
fn worker_variables() -> Vec<String> {
    let help = Command::new(common::cli())
        .args(["worker", "--help"])
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
    let known = worker_variables();
    assert!(
        known.contains(&"WECOM_SDK_ISOLATION".to_owned()),
        "{known:?}"
    );
    let compose = compose_environment();
    assert!(compose.len() >= 8, "{compose:?}");
    let names = compose
        .iter()
        .map(|(name, _, _)| name.clone())
        .chain(dockerfile_env().into_iter().map(|(name, _)| name));
    for name in names {
        assert!(
            known.contains(&name) || READ_ELSEWHERE.contains(&name.as_str()),
            "{name} is set by a deployment file but read by nothing"
        );
    }
}

#[test]
fn the_binary_accepts_the_deployment_files_values_and_commands() {
    let compose = project_file("docker-compose.yml");
    assert!(compose.contains(r#"command: ["worker"]"#));
    let dockerfile = project_file("Dockerfile");
    assert!(dockerfile.contains(r#"ENTRYPOINT ["wecom-archive"]"#));
    assert!(dockerfile.contains(r#"CMD ["worker"]"#));

    // The worker with exactly the compose file's environment (and the image's): it must get
    // past reading its settings, and stop only where this machine differs from the container
    // (there is no library at /opt/wecom).
    let mut env: BTreeMap<String, String> = dockerfile_env().into_iter().collect();
    for (name, value, commented) in compose_environment() {
        if !commented {
            env.insert(name, value);
        }
    }
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
}
