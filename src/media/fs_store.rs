//! The filesystem media store.
//!
//! Final names and working files live apart, so that no job input can name a working file: the
//! store's files are `root/ab/<sha256>[.ext]`, and a download of one writes
//! `root/.work/ab/<sha256>[.ext].part` and, after each chunk, records the next index, the byte
//! count and the file's fingerprint in `....resume` beside it (written to a temporary file and
//! renamed, so it is always whole). (A download outside a store, `fetch media --out`, keeps its
//! working files beside its output.) After the process is killed the data
//! file may hold more than the record says (the chunk was written, the record not yet): it is
//! cut back to the recorded length. A record that claims more than the data holds, belongs to
//! another file, or names an index the library would refuse, is not trusted: the download starts
//! over. When complete, the data file is fsynced and renamed to `dir/name`, so a file under its
//! final name is always whole. (Chunks are not fsynced one by one: resuming is promised across a
//! killed process, not across a power cut, which costs at most a fresh download.)
//!
//! One download of a file at a time: the data file is locked (`flock`, so across the workers
//! sharing a volume too) for as long as it is open; a second download of the same file fails
//! at once with `WouldBlock`, a transient store error, and is tried again later.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::partial::{MediaKey, MediaStore, PartialMedia, ResumePoint};

/// The folder of working files under a store's root: final names start with two hex digits.
const WORK_DIR: &str = ".work";

/// Reads of the kept bytes on resume go in pieces of this size: memory stays bounded.
const REPLAY_BUFFER: usize = 512 * 1024;

/// Media files under one root directory, named by [`MediaKey`].
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    /// A store under `root`; nothing is created until a file is opened.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Creates the store's folders and writes, syncs and removes a small probe file where
    /// downloads write, so that a store this process cannot write (a volume owned by another
    /// user, a read-only mount, a full disk) stops the command at start, naming the path and
    /// the system's reason, rather than failing every media job after its retries.
    pub fn check_writable(&self) -> Result<(), StoreUnusable> {
        let work = self.root.join(WORK_DIR);
        let unusable = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreUnusable { path, source }
        };
        fs::create_dir_all(&work).map_err(unusable(&work))?;
        // A name of its own: replicas sharing the volume start at once, each as process 1 of
        // its container.
        let probe = work.join(format!("probe-{}", uuid::Uuid::new_v4()));
        let written = File::create(&probe)
            .and_then(|mut file| file.write_all(b"probe").and_then(|()| file.sync_all()));
        let removed = fs::remove_file(&probe);
        written.map_err(unusable(&probe))?;
        removed.map_err(unusable(&probe))
    }
}

/// A media store this process cannot write.
#[derive(Debug, thiserror::Error)]
#[error("the media store cannot be written at {}: {source}", path.display())]
pub struct StoreUnusable {
    /// The folder or file that could not be made or written.
    pub path: PathBuf,
    /// The system's reason.
    pub source: io::Error,
}

impl MediaStore for FsStore {
    type Partial = PartialFile;

    fn open_partial(&self, key: &MediaKey) -> io::Result<PartialFile> {
        let relative = key.relative_path();
        PartialFile::open_working_at(
            self.root.join(&relative),
            self.root.join(WORK_DIR).join(&relative),
            key.fingerprint(),
        )
    }

    fn read_small(&self, location: &str, max: u64) -> io::Result<Vec<u8>> {
        let file = File::open(location)?;
        if file.metadata()?.len() > max {
            return Err(io::Error::other(format!(
                "{location} is larger than {max} bytes"
            )));
        }
        let mut bytes = Vec::new();
        file.take(max).read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}

/// What the `.resume` file holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    fingerprint: String,
    #[serde(flatten)]
    point: ResumePoint,
}

/// A file being downloaded to `final_path`.
#[derive(Debug)]
pub struct PartialFile {
    fingerprint: String,
    final_path: PathBuf,
    data_path: PathBuf,
    record_path: PathBuf,
    record_tmp_path: PathBuf,
    data: File,
    resume: Option<ResumePoint>,
    written: u64,
}

impl PartialFile {
    /// Opens the partial download of `final_path`, its working files beside it, continuing an
    /// earlier one when its record is for the same file (`fingerprint`) and consistent with the
    /// data on disk.
    pub fn open(final_path: PathBuf, fingerprint: &str) -> io::Result<Self> {
        let work = final_path.clone();
        Self::open_working_at(final_path, work, fingerprint)
    }

    /// As [`PartialFile::open`], with the working files at `work` plus `.part`, `.resume`.
    pub fn open_working_at(
        final_path: PathBuf,
        work: PathBuf,
        fingerprint: &str,
    ) -> io::Result<Self> {
        for path in [&final_path, &work] {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir)?;
            }
        }
        let data_path = sibling(&work, "part");
        let record_path = sibling(&work, "resume");
        let record_tmp_path = sibling(&work, "resume.tmp");
        let data = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&data_path)?;
        rustix::fs::flock(&data, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |_| {
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "another download of {} is in progress",
                        final_path.display()
                    ),
                )
            },
        )?;
        let on_disk = data.metadata()?.len();
        let resume = fs::read(&record_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Record>(&bytes).ok())
            .filter(|record| record.fingerprint == fingerprint)
            .map(|record| record.point)
            .filter(|point| point.bytes <= on_disk && point.is_usable());
        let mut partial = Self {
            fingerprint: fingerprint.to_owned(),
            final_path,
            data_path,
            record_path,
            record_tmp_path,
            data,
            written: resume.as_ref().map_or(0, |point| point.bytes),
            resume,
        };
        partial.data.set_len(partial.written)?;
        partial.data.seek(SeekFrom::Start(partial.written))?;
        if partial.resume.is_none() {
            remove_if_present(&partial.record_path)?;
        }
        Ok(partial)
    }

    fn write_record(&self, point: ResumePoint) -> io::Result<()> {
        let record = Record {
            fingerprint: self.fingerprint.clone(),
            point,
        };
        let bytes = serde_json::to_vec(&record).map_err(io::Error::other)?;
        fs::write(&self.record_tmp_path, bytes)?;
        fs::rename(&self.record_tmp_path, &self.record_path)
    }
}

impl PartialMedia for PartialFile {
    fn resume_point(&self) -> Option<ResumePoint> {
        self.resume.clone()
    }

    fn replay(&mut self, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        let mut reader = File::open(&self.data_path)?.take(self.written);
        let mut buffer = vec![0u8; REPLAY_BUFFER];
        loop {
            let n = reader.read(&mut buffer)?;
            if n == 0 {
                return Ok(());
            }
            sink(&buffer[..n]);
        }
    }

    fn append(&mut self, data: &[u8], next_index: Option<&str>) -> io::Result<()> {
        self.data.write_all(data)?;
        self.written += data.len() as u64;
        if let Some(next_index) = next_index {
            // The process may die at any time: the record only ever points at bytes already
            // handed to the kernel, so a resume never skips data.
            self.write_record(ResumePoint {
                next_index: next_index.to_owned(),
                bytes: self.written,
            })?;
        }
        Ok(())
    }

    fn restart(&mut self) -> io::Result<()> {
        remove_if_present(&self.record_path)?;
        self.data.set_len(0)?;
        self.data.seek(SeekFrom::Start(0))?;
        self.written = 0;
        self.resume = None;
        Ok(())
    }

    fn commit(self) -> io::Result<String> {
        self.data.sync_all()?;
        fs::rename(&self.data_path, &self.final_path)?;
        if let Some(dir) = self
            .final_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            File::open(dir)?.sync_all()?;
        }
        remove_if_present(&self.record_path)?;
        Ok(self.final_path.to_string_lossy().into_owned())
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEXT: &str = "Range:bytes=6-21";

    fn replayed(partial: &mut PartialFile) -> Vec<u8> {
        let mut all = Vec::new();
        partial
            .replay(&mut |bytes| all.extend_from_slice(bytes))
            .unwrap();
        all
    }

    #[test]
    fn a_reopened_download_continues_from_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut partial = PartialFile::open(path.clone(), "file-a").unwrap();
        assert_eq!(partial.resume_point(), None);
        partial.append(b"hello ", Some(NEXT)).unwrap();
        drop(partial);

        let mut partial = PartialFile::open(path.clone(), "file-a").unwrap();
        let point = partial.resume_point().unwrap();
        assert_eq!(
            (point.next_index.as_str(), point.bytes),
            ("Range:bytes=6-21", 6)
        );
        assert_eq!(replayed(&mut partial), b"hello ");
        partial.append(b"world", None).unwrap();
        assert!(!path.exists(), "not visible before commit");
        let location = partial.commit().unwrap();
        assert_eq!(fs::read(&location).unwrap(), b"hello world");
        assert!(!dir.path().join("f.part").exists());
        assert!(!dir.path().join("f.resume").exists());
    }

    #[test]
    fn bytes_written_after_the_last_record_are_cut_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut partial = PartialFile::open(path.clone(), "file-a").unwrap();
        partial.append(b"abc", Some(NEXT)).unwrap();
        // A crash between writing a chunk and recording it.
        partial.data.write_all(b"half-a-chunk").unwrap();
        drop(partial);
        let mut partial = PartialFile::open(path, "file-a").unwrap();
        assert_eq!(replayed(&mut partial), b"abc");
    }

    #[test]
    fn a_record_claiming_more_than_the_data_holds_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(dir.path().join("f.part"), b"ab").unwrap();
        fs::write(
            dir.path().join("f.resume"),
            br#"{"next_index":"x","bytes":99}"#,
        )
        .unwrap();
        let mut partial = PartialFile::open(path, "file-a").unwrap();
        assert_eq!(partial.resume_point(), None);
        assert_eq!(replayed(&mut partial), b"");
    }

    #[test]
    fn a_record_of_another_file_or_an_unusable_index_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut partial = PartialFile::open(path.clone(), "file-a").unwrap();
        partial.append(b"abc", Some(NEXT)).unwrap();
        drop(partial);
        let other = PartialFile::open(path.clone(), "file-b").unwrap();
        assert_eq!(
            other.resume_point(),
            None,
            "another sdkfileid at the same path"
        );
        drop(other);

        fs::write(dir.path().join("f.part"), b"abc").unwrap();
        fs::write(
            dir.path().join("f.resume"),
            r#"{"fingerprint":"file-a","next_index":"Range:bytes=3-4","bytes":3}"#,
        )
        .unwrap();
        assert_eq!(
            PartialFile::open(path, "file-a").unwrap().resume_point(),
            None
        );
    }

    #[test]
    fn a_second_download_of_the_same_file_is_refused_while_the_first_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let first = PartialFile::open(path.clone(), "file-a").unwrap();
        let second = PartialFile::open(path.clone(), "file-a").unwrap_err();
        assert_eq!(second.kind(), io::ErrorKind::WouldBlock);
        drop(first);
        assert!(PartialFile::open(path, "file-a").is_ok());
    }

    #[test]
    fn the_store_names_files_by_key_under_its_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        let key = MediaKey::new("sdkfileid", Some("a.jpg"));
        let mut partial = store.open_partial(&key).unwrap();
        partial.append(b"x", None).unwrap();
        let location = partial.commit().unwrap();
        assert_eq!(Path::new(&location), dir.path().join(key.relative_path()));
    }

    #[test]
    fn no_file_name_can_reach_a_working_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        // Job 1 asks for a final name that is another download's working-file name.
        for hint in ["evidence.part", "evidence.resume"] {
            let named = MediaKey::new(hint, Some(hint));
            let mut partial = store.open_partial(&named).unwrap();
            partial.append(b"evidence", None).unwrap();
            let location = partial.commit().unwrap();

            // Job 2 downloads the same sdkfileid with no name, and is interrupted.
            let plain = MediaKey::new(hint, None);
            let mut second = store.open_partial(&plain).unwrap();
            assert_eq!(
                second.resume_point(),
                None,
                "job 1's file is no resume record"
            );
            second.append(b"part", Some("Range:bytes=16-31")).unwrap();
            drop(second);
            assert_eq!(
                fs::read(&location).unwrap(),
                b"evidence",
                "job 1's file is intact"
            );
        }
    }
}
