//! Jobs that carry their corp's credentials: many corps leave bounded state behind. The job
//! core runs 1,000 chat jobs over 50 corps (each with key versions of its own) against the
//! emulator, then sits idle: its parsed key sets stay within the cache's capacity and every
//! corp's SDK pool is closed once idle.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use wecom_archive::config::{CoreConfig, RetryConfig, SdkLibConfig};
use wecom_archive::job::sink::MemorySink;
use wecom_archive::job::{parse, Core, JobKind, JobMeta};

use common::{default_config, fixture, Emulator};

const CORPS: u32 = 50;
const JOBS: u32 = 1000;
const KEY_SETS: usize = 8;
const POOL_IDLE: Duration = Duration::from_secs(1);

fn corpid(corp: u32) -> String {
    format!("ww-corp-{corp:02}")
}

/// Corp `corp`'s key versions: its own numbers, so that no two corps share a key set.
fn versions(corp: u32) -> [u32; 2] {
    [corp * 10 + 1, corp * 10 + 2]
}

#[tokio::test(flavor = "multi_thread")]
async fn many_inline_corps_leave_at_most_the_configured_key_sets_and_no_idle_pool() {
    let mut config = default_config();
    let template = config.corps.remove(0);
    for corp in 0..CORPS {
        let mut entry = template.clone();
        entry.corpid = corpid(corp);
        entry.secret = format!("secret-{corp}");
        entry.seed = u64::from(corp) + 1;
        let [v1, v2] = versions(corp);
        entry.public_keys = [
            (v1, fixture("keys/v1.pub.pem")),
            (v2, fixture("keys/v2.pub.pem")),
        ]
        .into();
        config.corps.push(entry);
    }
    let emulator = Emulator::with_config(&config);
    let core = Core::build(&CoreConfig {
        sdk: SdkLibConfig {
            lib: common::emulator_lib(),
        },
        media_dir: emulator.dir.path().join("media"),
        sdk_call_timeout_secs: 60,
        sdk_host_exe: Some(common::cli()),
        sdk_per_corp: 2,
        sdk_pool_idle_secs: POOL_IDLE.as_secs(),
        key_cache_sets: KEY_SETS,
        retry: RetryConfig {
            max_attempts: 1,
            retry_delays: vec![1],
        },
        ..CoreConfig::default()
    })
    .unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(Arc::clone(&core).maintain(shutdown.clone()));

    let pages = stream::iter(0..JOBS)
        .map(|n| {
            let core = Arc::clone(&core);
            async move {
                let corp = n % CORPS;
                let [v1, v2] = versions(corp);
                let job = json!({
                    "job_id": format!("job-{n}"), "corpid": corpid(corp), "secret": format!("secret-{corp}"),
                    "limit": 5,
                    "private_keys": [
                        {"publickey_ver": v1, "private_key": fixture("keys/v1.pem")},
                        {"publickey_ver": v2, "private_key": fixture("keys/v2.pem")},
                    ],
                });
                let job = parse(JobKind::FetchChatdata, &serde_json::to_vec(&job).unwrap()).unwrap();
                let meta = JobMeta {
                    job_id: Some(format!("job-{n}")),
                    attempt: 1,
                    ..JobMeta::default()
                };
                let mut sink = MemorySink::default();
                core.run(job, &meta, &mut sink, &CancellationToken::new())
                    .await
                    .unwrap_or_else(|stop| panic!("job {n}: {stop:?}"));
                let (page, _) = &sink.outputs[0];
                let page: serde_json::Value = serde_json::from_slice(&page.body).unwrap();
                assert_eq!(page["messages"].as_array().unwrap().len(), 5, "{page}");
                assert!(core.cached_key_sets() <= KEY_SETS);
            }
        })
        .buffer_unordered(8)
        .count()
        .await;
    assert_eq!(pages, JOBS as usize);
    assert!(
        core.cached_key_sets() <= KEY_SETS,
        "{}",
        core.cached_key_sets()
    );
    assert!(core.open_pools() > 0, "pools are kept between jobs");

    let deadline = Instant::now() + POOL_IDLE + Duration::from_secs(10);
    while core.open_pools() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} pools still open after the idle time",
            core.open_pools()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A closed pool's SDK hosts destroy their handles and exit a moment after it is closed.
    let made = emulator.calls_of("NewSdk").len();
    assert!(made >= CORPS as usize, "a handle per corp at least: {made}");
    while emulator.calls_of("DestroySdk").len() < made {
        assert!(
            Instant::now() < deadline,
            "{} of {made} handles destroyed",
            emulator.calls_of("DestroySdk").len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        core.cached_key_sets(),
        KEY_SETS,
        "the cache keeps the last sets"
    );
    shutdown.cancel();
}
