//! Catch-up against the emulator, as a property: archives with random gaps in their seqs,
//! answers cut short, calls that overtake each other (jitter) and transient failures, read by
//! jobs of random `seq`, `limit` and `max_pages` with one to four calls out at once. Each job
//! runs to its end as the worker runs it (after a failure, the retry goes on from the job's
//! progress); its pages, over every attempt, must hold each message of the archive between
//! the job's `seq` and its last page's `next_seq` exactly once, in `seq` order, each page
//! going on from the one before.
//!
//! `CATCHUP_SEED=n` runs another draw of archives and jobs (the seed is printed).

mod common;

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use wecom_archive::config::{CoreConfig, Isolation, RetryConfig, SdkLibConfig};
use wecom_archive::job::fate::Stop;
use wecom_archive::job::sink::MemorySink;
use wecom_archive::job::{parse, Core, JobKind, JobMeta};

use common::{default_config, inline_job, Emulator};

/// Attempts a job may take; a transient failure is drawn for about one call in six.
const ATTEMPTS: u32 = 200;

/// A corp of the draw: its archive and how its server behaves.
fn draw_corp(rng: &mut StdRng, index: usize) -> emulator::CorpConfig {
    let mut corp = default_config().corps.remove(0);
    corp.corpid = format!("ww-catchup-{index}");
    corp.seed = rng.gen();
    corp.message_count = rng.gen_range(0..700);
    corp.seq_gap_probability = [0.0, 0.1, 0.6][rng.gen_range(0..3)];
    corp.short_page_probability = [0.0, 0.0, 0.3][rng.gen_range(0..3)];
    corp.media_sizes.max = 64;
    let chat = &mut corp.faults.get_chat_data;
    chat.latency_ms = rng.gen_range(0..3);
    chat.jitter_ms = [0, 5, 20][rng.gen_range(0..3)];
    if rng.gen_bool(0.5) {
        chat.probability = 0.15;
        chat.codes = vec![10001, 10002, 10003];
    }
    corp
}

fn core(in_flight: usize) -> Arc<Core> {
    let media = tempfile::tempdir().unwrap();
    Core::build(&CoreConfig {
        sdk: SdkLibConfig {
            lib: common::emulator_lib(),
        },
        media_dir: media.keep(),
        // The plan is the same wherever the library runs; in process keeps the draw quick.
        sdk_isolation: Isolation::InProcess,
        sdk_call_timeout_secs: 60,
        chat_pages_in_flight: in_flight,
        key_cache_sets: 8,
        retry: RetryConfig {
            max_attempts: ATTEMPTS,
            retry_delays: vec![0],
        },
        ..CoreConfig::default()
    })
    .unwrap()
}

/// A page as a consumer reads it.
struct Page {
    seq: u64,
    next_seq: u64,
    has_more: bool,
    seqs: Vec<u64>,
}

/// Runs `job` to its end, a retry going on from the progress of each failed attempt. Returns
/// its pages, over every attempt.
async fn run_to_the_end(core: &Arc<Core>, job: &Value) -> Vec<Page> {
    let body = serde_json::to_vec(job).unwrap();
    let mut meta = JobMeta {
        job_id: Some("catch-up".into()),
        attempt: 1,
        ..JobMeta::default()
    };
    let mut pages = Vec::new();
    loop {
        let mut sink = MemorySink::default();
        let parsed = parse(JobKind::FetchChatdata, &body).unwrap();
        let ended = core
            .run(parsed, &meta, &mut sink, &CancellationToken::new())
            .await;
        for (output, _) in sink.outputs {
            let page: Value = serde_json::from_slice(&output.body).unwrap();
            assert_eq!(page["errors"], json!([]), "every message decrypts");
            pages.push(Page {
                seq: page["seq"].as_u64().unwrap(),
                next_seq: page["next_seq"].as_u64().unwrap(),
                has_more: page["has_more"].as_bool().unwrap(),
                seqs: page["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["seq"].as_u64().unwrap())
                    .collect(),
            });
        }
        match ended {
            Ok(()) => return pages,
            Err(Stop::Failed { error, progress }) => {
                let code = error.info().code;
                assert!(
                    [10001, 10002, 10003].contains(&code),
                    "only the drawn failures: {code}"
                );
                assert!(meta.attempt < ATTEMPTS, "the job never got through");
                meta.attempt += 1;
                meta.progress = progress.or(meta.progress);
            }
            Err(other) => panic!("the run ended with {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_message_of_the_range_once_in_order_whatever_the_archive_and_its_server() {
    let seed = std::env::var("CATCHUP_SEED").map_or(20261130, |s| s.parse().unwrap());
    println!("CATCHUP_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let config = emulator::Config {
        corps: (0..16).map(|i| draw_corp(&mut rng, i)).collect(),
        ..emulator::Config::default()
    };
    let _emulator = Emulator::with_config(&config);
    let cores = [core(1), core(2), core(4)];

    let mut jobs = 0;
    for corp in &config.corps {
        for core in &cores {
            let limit: u32 = [1, 7, 50, 200][rng.gen_range(0..4)];
            let max_pages: u32 = rng.gen_range(1..30);
            let start = [0, rng.gen_range(0..corp.message_count.max(1))][rng.gen_range(0..2)];
            let job = inline_job(json!({
                "corpid": corp.corpid, "seq": start, "limit": limit, "max_pages": max_pages,
            }));
            let pages = run_to_the_end(core, &job).await;
            let what = format!(
                "corp {} (gaps {}, short {}), seq {start}, limit {limit}, max_pages {max_pages}",
                corp.corpid, corp.seq_gap_probability, corp.short_page_probability
            );

            assert!(!pages.is_empty(), "{what}: a job has a page");
            assert!(pages.len() <= max_pages as usize, "{what}");
            let mut seq = start;
            for page in &pages {
                assert_eq!(
                    page.seq, seq,
                    "{what}: each page goes on from the one before"
                );
                assert!(page.seqs.len() <= limit as usize, "{what}");
                assert_eq!(page.has_more, page.seqs.len() == limit as usize, "{what}");
                seq = page.next_seq;
            }
            let published: Vec<u64> = pages.iter().flat_map(|p| p.seqs.clone()).collect();
            let archive: Vec<u64> = (start + 1..=seq)
                .filter(|&s| emulator::holds_seq(corp, s))
                .collect();
            assert_eq!(published, archive, "{what}: each message once, in order");
            if corp.short_page_probability == 0.0 && pages.len() < max_pages as usize {
                let newest = (1..=corp.message_count)
                    .rev()
                    .find(|&s| emulator::holds_seq(corp, s))
                    .unwrap_or(0);
                assert_eq!(seq, newest.max(start), "{what}: ended at the archive's end");
            }
            jobs += 1;
        }
    }
    assert_eq!(jobs, 48);
}
