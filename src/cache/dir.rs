//! Where the cache lives. larder and `larder-cache` both take `--cache-dir` and fall back
//! on [`default_dir`], so the tool always finds the file the proxy writes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{CacheError, FILE_NAME};

/// `--cache-size` when none is given: 256 MiB fits a Raspberry Pi's SD card many times.
pub const DEFAULT_CACHE_SIZE: u64 = 256 << 20;

/// The cache directory when `--cache-dir` is not given: `$XDG_CACHE_HOME/larder` if that
/// variable holds an absolute path (the XDG spec says to ignore relative ones), else
/// `$HOME/.cache/larder` if `HOME` is set and not empty, else `./larder-cache`.
///
/// Reads the environment only; creates nothing.
pub fn default_dir() -> PathBuf {
    default_dir_from(std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME"))
}

/// [`default_dir`] with the environment passed in, so tests need not change the
/// process's own.
fn default_dir_from(xdg_cache_home: Option<OsString>, home: Option<OsString>) -> PathBuf {
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
    std::fs::create_dir_all(dir).map_err(|e| CacheError::Io(dir.to_path_buf(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<OsString> {
        Some(OsString::from(s))
    }

    #[test]
    fn absolute_xdg_cache_home_wins() {
        assert_eq!(
            default_dir_from(os("/var/cache/me"), os("/home/me")),
            PathBuf::from("/var/cache/me/larder")
        );
    }

    #[test]
    fn relative_or_empty_xdg_cache_home_is_ignored() {
        for xdg in ["relative/cache", ""] {
            assert_eq!(
                default_dir_from(os(xdg), os("/home/me")),
                PathBuf::from("/home/me/.cache/larder"),
                "{xdg:?}"
            );
        }
    }

    #[test]
    fn home_is_used_without_xdg() {
        assert_eq!(
            default_dir_from(None, os("/home/me")),
            PathBuf::from("/home/me/.cache/larder")
        );
    }

    #[test]
    fn no_home_falls_back_to_the_working_directory() {
        assert_eq!(
            default_dir_from(None, None),
            PathBuf::from("./larder-cache")
        );
        assert_eq!(
            default_dir_from(os("rel"), os("")),
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
        assert!(err.to_string().contains("file"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
