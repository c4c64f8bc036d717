//! A stored media file as an HTTP body, streamed: memory holds one piece of it whatever its
//! size. As it is (`/v1/media`), or as one JSON string of base64 (the seed service's answer).
//! Each body's length is known before the first byte, so answers carry `Content-Length`.

use std::io;
use std::path::{Component, Path};

use axum::body::{Body, Bytes};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures_util::stream::{self, Stream, StreamExt};
use tokio::fs::File;
use tokio::io::AsyncReadExt;

/// Bytes read at a time; a multiple of 3, so that pieces encode to base64 independently.
const PIECE: usize = 3 * 64 * 1024;

/// Opens the file a media result names at `location`, which must lie inside `root` (the store
/// the gateway shares with whoever ran the job).
pub async fn open(root: &Path, location: &str) -> io::Result<File> {
    let path = Path::new(location);
    let inside = path
        .strip_prefix(root)
        .is_ok_and(|rest| rest.components().all(|c| matches!(c, Component::Normal(_))));
    if !inside {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the result names a file outside the media store",
        ));
    }
    File::open(path).await
}

/// The file's bytes, as they are.
pub fn raw(file: File) -> Body {
    Body::from_stream(pieces(file))
}

/// The file's bytes as one JSON string of base64, and that body's length for a file of `size`
/// bytes.
pub fn base64_json_string(file: File, size: u64) -> (Body, u64) {
    let quote = || stream::once(async { Ok::<_, io::Error>(Bytes::from_static(b"\"")) });
    let encoded = pieces(file).map(|piece| piece.map(|bytes| Bytes::from(STANDARD.encode(bytes))));
    let body = Body::from_stream(quote().chain(encoded).chain(quote()));
    (body, 2 + size.div_ceil(3) * 4)
}

/// The file in pieces of [`PIECE`] bytes (the last one shorter); ends after an error.
fn pieces(file: File) -> impl Stream<Item = io::Result<Bytes>> {
    stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut piece = vec![0; PIECE];
        let mut filled = 0;
        while filled < PIECE {
            match file.read(&mut piece[filled..]).await {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) => return Some((Err(err), None)),
            }
        }
        piece.truncate(filled);
        (filled > 0).then(|| (Ok(Bytes::from(piece)), Some(file)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn collect(body: Body) -> Vec<u8> {
        body.collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn a_file_streams_whole_and_as_base64_of_the_announced_length() {
        let dir = tempfile::tempdir().unwrap();
        // Pieces of 3 * 64 KiB: a size across several, not a multiple of 3.
        let bytes: Vec<u8> = (0..3 * PIECE + 1000).map(|i| (i * 7 % 251) as u8).collect();
        let path = dir.path().join("ab").join("file.bin");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let location = path.to_str().unwrap();

        let raw_body = collect(raw(open(dir.path(), location).await.unwrap())).await;
        assert_eq!(raw_body, bytes);

        let file = open(dir.path(), location).await.unwrap();
        let (body, length) = base64_json_string(file, bytes.len() as u64);
        let text = collect(body).await;
        assert_eq!(text.len() as u64, length);
        let decoded: String = serde_json::from_slice(&text).unwrap();
        assert_eq!(STANDARD.decode(decoded).unwrap(), bytes);
    }

    #[tokio::test]
    async fn a_location_outside_the_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("media");
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(dir.path().join("secret"), b"x").unwrap();
        for location in [dir.path().join("secret"), store.join("..").join("secret")] {
            let err = open(&store, location.to_str().unwrap()).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{location:?}");
        }
    }
}
