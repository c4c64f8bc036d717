//! An SDK host as the worker drives it ([`wecom_archive::sdk_host::client`]), over the emulator:
//! media chunks come through the memory shared with the host while the worker has a slot free,
//! and through the socket when every slot is held, the same bytes either way.

mod common;

use std::time::Duration;

use secrecy::SecretString;
use wecom_archive::sdk::shared_slots::SLOTS;
use wecom_archive::sdk::{ChunkBytes, NetOptions};
use wecom_archive::sdk_host::client::HostSpawner;

use common::{Emulator, CORPID, SECRET};

#[test]
fn chunks_come_through_the_shared_slots_and_through_the_socket_when_every_slot_is_held() {
    let _emulator = Emulator::default_corp();
    let spawner = HostSpawner {
        exe: common::cli(),
        lib: common::emulator_lib(),
        call_timeout: Duration::from_secs(30),
    };
    let mut host = spawner.spawn(CORPID, &SecretString::from(SECRET)).unwrap();
    let chunks = SLOTS + 2;
    let size = (chunks * 512 * 1024 - 100) as u64;
    let sdkfileid = emulator::media_file_id(size, 1, 7);
    let (mut index, mut held) = (String::new(), Vec::new());
    // Every chunk held, as a download's stages hold theirs: the slots run out.
    for _ in 0..chunks {
        let chunk = host
            .get_media_chunk(&sdkfileid, &index, &NetOptions::default())
            .unwrap();
        let next = chunk.next_index.clone();
        held.push(chunk.data);
        match next {
            Some(next) => index = next,
            None => break,
        }
    }
    let shared = held
        .iter()
        .filter(|data| matches!(data, ChunkBytes::Shared(_)))
        .count();
    assert_eq!(held.len(), chunks);
    assert_eq!(
        shared, SLOTS,
        "a slot each while one was free, then the socket"
    );
    let bytes: Vec<u8> = held.iter().flat_map(|data| data.iter().copied()).collect();
    let mut expected = Vec::new();
    std::io::Read::read_to_end(
        &mut emulator::media_content(emulator_seed(), &sdkfileid),
        &mut expected,
    )
    .unwrap();
    assert!(bytes == expected, "the file's bytes, in order, both ways");

    // A chunk dropped frees its slot for the next call.
    held.clear();
    let again = host
        .get_media_chunk(&sdkfileid, "", &NetOptions::default())
        .unwrap();
    assert!(matches!(again.data, ChunkBytes::Shared(_)));
}

/// The default corp's seed, which decides the media content.
fn emulator_seed() -> u64 {
    common::default_config().corps[0].seed
}
