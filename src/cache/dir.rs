//! Where the cache lives. larder and `larder-cache` both take `--cache-dir` and fall back
//! on [`default_dir`], so the tool always finds the file the proxy writes.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::format::{decode_file_header, FILE_HEADER_FIELDS_LEN};
use super::size::human;
use super::{CacheError, FILE_NAME};

/// `--cache-size` when none is given: 256 MiB fits a Raspberry Pi's SD card many times.
pub const DEFAULT_CACHE_SIZE: u64 = 256 << 20;

/// The cache directory when `--cache-dir` is not given: `$CACHE_DIRECTORY` if it holds
/// an absolute path (systemd sets it for a service with `CacheDirectory=`; of several
/// paths separated by `:`, the first), else `$XDG_CACHE_HOME/larder` if that variable
/// holds an absolute path (the XDG spec says to ignore relative ones), else
/// `$HOME/.cache/larder` if `HOME` is set and not empty, else `./larder-cache`.
///
/// Reads the environment only; creates nothing.
pub fn default_dir() -> PathBuf {
    default_dir_from(
        std::env::var_os("CACHE_DIRECTORY"),
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
    )
}

/// [`default_dir`] with the environment passed in, so tests need not change the
/// process's own.
fn default_dir_from(
    cache_directory: Option<OsString>,
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
) -> PathBuf {
    if let Some(dirs) = &cache_directory {
        let first = dirs.as_bytes().split(|&b| b == b':').next().unwrap_or(b"");
        let first = Path::new(std::ffi::OsStr::from_bytes(first));
        if first.is_absolute() {
            return first.to_path_buf();
        }
    }
    if let Some(xdg) = xdg_cache_home.map(PathBuf::from) {
        if xdg.is_absolute() {
            return xdg.join("larder");
        }
    }
    match home {
        Some(home) if !home.is_empty() => PathBuf::from(home).join(".cache").join("larder"),
        _ => PathBuf::from("./larder-cache"),
    }
}

/// The cache file inside `dir`: `<dir>/larder.cache`.
pub fn file_path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Creates `dir` and its missing parents, for larder's start-up. The tool never calls
/// this: it must not leave an empty cache behind where the user mistyped a path.
pub fn create(dir: &Path) -> Result<(), CacheError> {
    if let Some(file) = file_in_the_way(dir) {
        let e = std::io::Error::other(format!("{} is a file, not a directory", file.display()));
        return Err(CacheError::Io(dir.to_path_buf(), e));
    }
    std::fs::create_dir_all(dir).map_err(|e| CacheError::Io(dir.to_path_buf(), e))
}

/// What keeps `dir` from being a directory: `dir` itself, or the nearest of its parents
/// that exists, when that is not a directory (a regular file, say). `None` when `dir`
/// is a directory or can be made one (as far as file types go).
pub fn file_in_the_way(dir: &Path) -> Option<PathBuf> {
    let existing = dir
        .ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.exists())?;
    (!existing.is_dir()).then(|| existing.to_path_buf())
}

/// The capacity an existing cache file in `dir` records in its header; `None` when
/// there is no file or its header does not decode (opening it then names the problem).
pub fn existing_capacity(dir: &Path) -> Option<u64> {
    let mut header = [0u8; FILE_HEADER_FIELDS_LEN];
    std::fs::File::open(file_path(dir))
        .ok()?
        .read_exact(&mut header)
        .ok()?;
    decode_file_header(&header).ok().map(|h| h.capacity)
}

/// A warning for start-up when the cache file at `path`, of `capacity` bytes, may need
/// more disk than its file system has free. The file is sparse: what it may still take
/// is its capacity less the blocks it already has. `None` when it fits, or when the
/// figures cannot be read.
pub fn space_warning(path: &Path, capacity: u64) -> Option<String> {
    let allocated = std::fs::metadata(path).ok()?.blocks().saturating_mul(512);
    let free = crate::sys::free_space(path).ok()?;
    space_warning_for(path, capacity, allocated, free)
}

/// [`space_warning`] with the figures passed in.
fn space_warning_for(path: &Path, capacity: u64, allocated: u64, free: u64) -> Option<String> {
    let needed = capacity.saturating_sub(allocated);
    (needed > free).then(|| {
        format!(
            "the cache {} is {} ({} of it on disk so far), but its file system has only {} \
             free: once the disk is full, responses are no longer stored; a smaller \
             --cache-size avoids that",
            path.display(),
            human(capacity),
            human(allocated),
            human(free)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<OsString> {
        Some(OsString::from(s))
    }

    #[test]
    fn systemd_cache_directory_comes_first_and_the_first_of_several_is_used() {
        assert_eq!(
            default_dir_from(os("/var/cache/larder"), os("/xdg"), os("/home/me")),
            PathBuf::from("/var/cache/larder")
        );
        assert_eq!(
            default_dir_from(os("/var/cache/larder:/var/cache/other"), None, None),
            PathBuf::from("/var/cache/larder")
        );
    }

    #[test]
    fn relative_or_empty_cache_directory_is_ignored() {
        for dirs in ["", "relative", ":/var/cache/larder"] {
            assert_eq!(
                default_dir_from(os(dirs), os("/xdg"), None),
                PathBuf::from("/xdg/larder"),
                "{dirs:?}"
            );
        }
    }

    #[test]
    fn absolute_xdg_cache_home_wins() {
        assert_eq!(
            default_dir_from(None, os("/var/cache/me"), os("/home/me")),
            PathBuf::from("/var/cache/me/larder")
        );
    }

    #[test]
    fn relative_or_empty_xdg_cache_home_is_ignored() {
        for xdg in ["relative/cache", ""] {
            assert_eq!(
                default_dir_from(None, os(xdg), os("/home/me")),
                PathBuf::from("/home/me/.cache/larder"),
                "{xdg:?}"
            );
        }
    }

    #[test]
    fn home_is_used_without_xdg() {
        assert_eq!(
            default_dir_from(None, None, os("/home/me")),
            PathBuf::from("/home/me/.cache/larder")
        );
    }

    #[test]
    fn no_home_falls_back_to_the_working_directory() {
        assert_eq!(
            default_dir_from(None, None, None),
            PathBuf::from("./larder-cache")
        );
        assert_eq!(
            default_dir_from(os("rel"), os("rel"), os("")),
            PathBuf::from("./larder-cache")
        );
    }

    #[test]
    fn the_file_is_named_larder_cache() {
        assert_eq!(file_path(Path::new("/c")), PathBuf::from("/c/larder.cache"));
    }

    #[test]
    fn create_makes_missing_parents_and_accepts_an_existing_dir() {
        let root = std::env::temp_dir().join(format!("larder-dir-test-{}", std::process::id()));
        let dir = root.join("a").join("b");
        create(&dir).unwrap();
        create(&dir).unwrap();
        assert!(dir.is_dir());
        let blocker = root.join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let err = create(&blocker.join("sub")).unwrap_err();
        assert!(
            err.to_string().contains("is a file, not a directory"),
            "{err}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_file_in_the_way_is_named() {
        let root = std::env::temp_dir().join(format!("larder-dir-way-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let file = root.join("plain");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(file_in_the_way(&file), Some(file.clone()));
        assert_eq!(file_in_the_way(&file.join("a/b")), Some(file.clone()));
        assert_eq!(file_in_the_way(&root), None);
        assert_eq!(file_in_the_way(&root.join("new/dir")), None);
        assert_eq!(file_in_the_way(Path::new("relative-missing-dir")), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn space_warning_counts_what_the_sparse_file_may_still_take() {
        let path = Path::new("/c/larder.cache");
        // 4 GiB file, 1 GiB of it on disk: 3 GiB more may be needed.
        assert_eq!(space_warning_for(path, 4 << 30, 1 << 30, 3 << 30), None);
        let warning = space_warning_for(path, 4 << 30, 1 << 30, (3 << 30) - 1)
            .expect("3 GiB needed, less free");
        assert!(warning.contains("/c/larder.cache is 4 GiB"), "{warning}");
        assert!(warning.contains("only 3 GiB free"), "{warning}");
        assert!(warning.contains("--cache-size"), "{warning}");
        // More allocated than the capacity (metadata blocks): nothing more is needed.
        assert_eq!(space_warning_for(path, 1 << 20, 2 << 20, 0), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn free_space_is_read_from_the_file_system() {
        let free = crate::sys::free_space(&std::env::temp_dir()).unwrap();
        assert!(free > 0);
        assert!(crate::sys::free_space(Path::new("/no/such/dir/here")).is_err());
    }

    #[test]
    fn existing_capacity_reads_the_cache_header() {
        let root = std::env::temp_dir().join(format!("larder-dir-cap-{}", std::process::id()));
        assert_eq!(existing_capacity(&root), None);
        let opened = crate::cache::startup::open_for_proxy(&root, Some(1 << 20), None, 0).unwrap();
        drop(opened);
        assert_eq!(existing_capacity(&root), Some(1 << 20));
        std::fs::write(file_path(&root), b"not a cache").unwrap();
        assert_eq!(existing_capacity(&root), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn no_space_warning_for_a_small_cache_here() {
        let root = std::env::temp_dir().join(format!("larder-dir-space-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let file = root.join(FILE_NAME);
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(space_warning(&file, 4096), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
