//! Checks that a stored object still holds the bytes its digest names.
//!
//! The cache is a content store: an object is verified when it enters and
//! again whenever it is used to produce output. Re-hashing every object
//! on every build would cost seconds on a warm rebuild, so, as git's index
//! does for a work tree, a successful check leaves a stamp: the digest
//! with the file's device, inode, size, mtime and ctime. While the stat
//! still matches the stamp the file has not been written since it was
//! hashed (any write, rename over it or `touch` moves its ctime, which no
//! user program can set back), and the hash is skipped. Anything else is
//! hashed again. `cache verify` re-hashes everything regardless, for
//! damage below the file system.

use sha2::{Digest as _, Sha256};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The stamps of a cache, one small file per checked path.
#[derive(Clone, Debug)]
pub struct Stamps {
    dir: PathBuf,
}

fn stat_line(hex: &str, md: &std::fs::Metadata) -> String {
    format!(
        "{hex} {} {} {} {}.{} {}.{}\n",
        md.dev(),
        md.ino(),
        md.size(),
        md.mtime(),
        md.mtime_nsec(),
        md.ctime(),
        md.ctime_nsec()
    )
}

impl Stamps {
    /// The stamps kept under `cache_root/stamps`.
    pub fn open(cache_root: &Path) -> Stamps {
        Stamps {
            dir: cache_root.join("stamps"),
        }
    }

    fn stamp_path(&self, path: &Path) -> PathBuf {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let key = hex::encode(Sha256::digest(abs.as_os_str().as_encoded_bytes()));
        self.dir.join(&key[..2]).join(&key[2..])
    }

    /// Whether `path` holds bytes whose sha256 is `hex`: from the stamp
    /// when the file is unchanged since it was last hashed, else by
    /// hashing it (and stamping it when it matches). A missing file is
    /// `Ok(false)`.
    pub fn verify(&self, path: &Path, hex: &str) -> io::Result<bool> {
        let md = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let stamp = self.stamp_path(path);
        if std::fs::read_to_string(&stamp).is_ok_and(|s| s == stat_line(hex, &md)) {
            return Ok(true);
        }
        if sha256_file(path)? != hex {
            let _ = std::fs::remove_file(&stamp);
            return Ok(false);
        }
        self.record(path, hex);
        Ok(true)
    }

    /// Stamps `path` as holding `hex`, for a caller that just hashed the
    /// bytes it wrote there. Failing to stamp only costs a hash later.
    pub fn record(&self, path: &Path, hex: &str) {
        let Ok(md) = std::fs::metadata(path) else {
            return;
        };
        let stamp = self.stamp_path(path);
        let write = || -> io::Result<()> {
            let parent = stamp.parent().unwrap_or(&self.dir);
            std::fs::create_dir_all(parent)?;
            let mut tmp = tempfile::Builder::new()
                .prefix(".tmp-")
                .tempfile_in(parent)?;
            tmp.write_all(stat_line(hex, &md).as_bytes())?;
            tmp.persist(&stamp).map_err(|e| e.error)?;
            Ok(())
        };
        let _ = write();
    }

    /// Forgets what is known of `path` (it was removed or replaced).
    pub fn forget(&self, path: &Path) {
        let _ = std::fs::remove_file(self.stamp_path(path));
    }
}

/// The sha256 of a file's bytes, lowercase hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Copies `src` to `dest` (a new file, never a link: a layout and the cache
/// must not share a writable inode), hashing the bytes on the way; the
/// copy is kept only when they hash to `hex`. Returns whether they did.
pub fn copy_verified(src: &Path, dest: &Path, hex: &str) -> io::Result<bool> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    let mut f = std::fs::File::open(src)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        tmp.write_all(&buf[..n])?;
    }
    if hex::encode(h.finalize()) != hex {
        return Ok(false);
    }
    tmp.persist(dest).map_err(|e| e.error)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let stamps = Stamps::open(dir.path());
        let f = dir.path().join("obj");
        std::fs::write(&f, b"hello").unwrap();
        let hex = sha256_file(&f).unwrap();
        assert!(stamps.verify(&f, &hex).unwrap());
        assert!(stamps.verify(&f, &hex).unwrap(), "stamped");
        // Same size, same mtime after the edit: the ctime still moves.
        let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
        std::fs::write(&f, b"hellO").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert!(!stamps.verify(&f, &hex).unwrap());
        assert!(!stamps.verify(&dir.path().join("none"), &hex).unwrap());
    }

    #[test]
    fn a_copy_that_does_not_hash_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a");
        std::fs::write(&src, b"abc").unwrap();
        let hex = sha256_file(&src).unwrap();
        let dest = dir.path().join("b");
        assert!(copy_verified(&src, &dest, &hex).unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), b"abc");
        let other = dir.path().join("c");
        assert!(!copy_verified(&src, &other, &"0".repeat(64)).unwrap());
        assert!(!other.exists());
    }
}
