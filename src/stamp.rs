//! What tells larder that a file it re-reads on change (a block list, the password
//! file) has changed: its modification time, length and inode. The inode is in it
//! because such a file is often replaced by renaming a new one over it, which may keep
//! the old length and the same second of modification.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::SystemTime;

/// The identity of a file's contents, as far as its metadata tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    ino: u64,
}

impl Stamp {
    /// The stamp of the file `meta` describes.
    pub fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            ino: meta.ino(),
        }
    }
}
