//! Files Hangar reads and writes on the host: config files read with bounds,
//! and the data directory kept private (0700, files 0600).
//!
//! Invariant: a path a client named is never opened in a way that can block
//! (FIFOs, devices) or read without a size cap; only regular files are read.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Largest config file read (YAML): 4 MiB.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Mode of the data directory and every directory under it.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of every file Hangar writes into the data directory.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A FIFO, device, socket or directory: never read.
    #[error("not a regular file")]
    NotRegular,
    /// Larger than the cap.
    #[error("larger than {max} bytes")]
    TooLarge {
        /// The cap.
        max: u64,
    },
    /// Not UTF-8 text.
    #[error("not UTF-8 text")]
    NotText,
}

/// Reads a regular file of at most `max` bytes as UTF-8 text.
///
/// The file is opened non-blocking (opening a FIFO never waits for a
/// writer) and checked to be a regular file before a byte is read; at most
/// `max + 1` bytes are ever read, whatever the file claims its size is.
pub fn read_text_bounded(path: &Path, max: u64) -> Result<String, ReadError> {
    let flags = nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_NOCTTY;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular);
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge { max });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge { max });
    }
    String::from_utf8(bytes).map_err(|_| ReadError::NotText)
}

/// Creates `dir` (and its parents) if needed and makes it 0700, so nothing
/// in it is reachable by other users whatever the modes of its files.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let meta = std::fs::metadata(dir)?;
    if meta.permissions().mode() & 0o777 != PRIVATE_DIR_MODE {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(PRIVATE_DIR_MODE))?;
    }
    Ok(())
}

/// Makes an existing file 0600 (a missing one is not an error).
pub fn restrict_file(path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o777 != PRIVATE_FILE_MODE => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE_FILE_MODE))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `contents` to `path` as a 0600 file, through a temporary file in
/// the same directory that is synced and renamed into place (never seen half
/// written).
pub fn write_private_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{:016x}", rand::random::<u64>()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_FILE_MODE)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    let result = write();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_bounded_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, "providers: {}\n").unwrap();
        assert_eq!(read_text_bounded(&file, 100).unwrap(), "providers: {}\n");
        assert!(matches!(
            read_text_bounded(&file, 5),
            Err(ReadError::TooLarge { max: 5 })
        ));
        assert!(matches!(
            read_text_bounded(dir.path(), 100),
            Err(ReadError::NotRegular | ReadError::Io(_))
        ));
        assert!(matches!(
            read_text_bounded(Path::new("/dev/zero"), 100),
            Err(ReadError::NotRegular)
        ));
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // Opening a FIFO with no writer would block without O_NONBLOCK.
        assert!(matches!(
            read_text_bounded(&fifo, 100),
            Err(ReadError::NotRegular)
        ));
        std::fs::write(&file, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_text_bounded(&file, 100),
            Err(ReadError::NotText)
        ));
    }

    #[test]
    fn private_dirs_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&data).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        let f = data.join("x");
        write_private_atomic(&f, b"hello").unwrap();
        assert_eq!(mode(&f), 0o600);
        assert_eq!(std::fs::read(&f).unwrap(), b"hello");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        restrict_file(&f).unwrap();
        assert_eq!(mode(&f), 0o600);
        restrict_file(&data.join("missing")).unwrap();
        assert_eq!(
            std::fs::read_dir(&data).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
