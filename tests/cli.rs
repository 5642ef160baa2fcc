//! Start-up: bad configuration exits with status 2 before binding; `LARDER_*` variables
//! configure like their flags; the cache file is made, sized, resized and guarded as the
//! flags say.

use crate::support::{run_to_exit, Proxy, TempDir};

#[test]
fn bad_flags_exit_with_status_2() {
    for args in [
        &["--no-such-flag"][..],
        &["--timeout-idle", "soon"],
        &["--allow", "not-a-cidr"],
        &["--connect-ports", "http"],
        &["--cache-size", "lots"],
        &["--cache-size", "0"],
    ] {
        let (code, stderr) = run_to_exit(args);
        assert_eq!(code, Some(2), "{args:?}; stderr:\n{stderr}");
        assert!(!stderr.trim().is_empty(), "{args:?}: no message");
        assert!(
            !stderr.contains("listening on"),
            "{args:?} bound anyway:\n{stderr}"
        );
    }
}

#[test]
fn unreadable_block_list_exits_with_status_2() {
    let path = std::env::temp_dir().join(format!(
        "larder-test-{}-missing/list.txt",
        std::process::id()
    ));
    let path = path.to_str().expect("UTF-8 temp path");
    let (code, stderr) = run_to_exit(&["--block-list", path]);
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains(path),
        "message does not name the file:\n{stderr}"
    );
    assert!(!stderr.contains("listening on"), "bound anyway:\n{stderr}");
}

#[test]
fn environment_twin_configures_like_its_flag() {
    let proxy = Proxy::start_with_env(&[], &[("LARDER_BLOCK", "envblocked.test")]);
    let response = proxy.get("http://www.envblocked.test/");
    assert_eq!(response.status, 403);
    assert!(
        response.text().contains("envblocked.test"),
        "page: {}",
        response.text()
    );
}

/// The cache file a `--cache-dir` gets, and its length on disk.
fn cache_file_len(dir: &TempDir) -> Option<u64> {
    std::fs::metadata(dir.path().join("larder.cache"))
        .ok()
        .map(|m| m.len())
}

#[test]
fn cache_dir_and_size_make_the_file_and_start_up_names_it() {
    let dir = TempDir::new("cache-flags");
    let nested = dir.path().join("a").join("b");
    let nested = nested.to_str().expect("UTF-8 temp path");
    let proxy = Proxy::start(&["--cache-dir", nested, "--cache-size", "2M"]);
    let file = format!("{nested}/larder.cache");
    assert!(
        proxy
            .stderr()
            .contains(&format!("larder: cache {file} (2 MiB, 0 objects)")),
        "start-up lines:\n{}",
        proxy.stderr()
    );
    assert_eq!(
        std::fs::metadata(&file).map(|m| m.len()).ok(),
        Some(2 << 20)
    );
}

#[test]
fn cache_dir_environment_twin_is_used() {
    let dir = TempDir::new("cache-env");
    let path = dir.path().to_str().expect("UTF-8 temp path");
    let _proxy = Proxy::start_with_env(
        &[],
        &[("LARDER_CACHE_DIR", path), ("LARDER_CACHE_SIZE", "3M")],
    );
    assert_eq!(cache_file_len(&dir), Some(3 << 20));
}

#[test]
fn a_second_larder_on_the_same_cache_is_refused() {
    let dir = TempDir::new("cache-locked");
    let path = dir.path().to_str().expect("UTF-8 temp path");
    let _first = Proxy::start(&["--cache-dir", path]);
    let (code, stderr) = run_to_exit(&["--cache-dir", path]);
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("is in use"), "stderr:\n{stderr}");
    assert!(!stderr.contains("listening on"), "bound anyway:\n{stderr}");
}

#[test]
fn a_file_that_is_not_a_cache_is_refused_and_left_alone() {
    let dir = TempDir::new("cache-foreign");
    let file = dir.path().join("larder.cache");
    let mine = b"my notes, not a cache\n".repeat(100);
    std::fs::write(&file, &mine).expect("write");
    let path = dir.path().to_str().expect("UTF-8 temp path");
    let (code, stderr) = run_to_exit(&["--cache-dir", path]);
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("not a larder cache"), "stderr:\n{stderr}");
    assert_eq!(
        std::fs::read(&file).ok(),
        Some(mine),
        "the file was changed"
    );
}

#[test]
fn a_new_cache_size_resizes_the_existing_cache_at_start_up() {
    let dir = TempDir::new("cache-resize");
    let path = dir.path().to_str().expect("UTF-8 temp path");
    let mut small = Proxy::start(&["--cache-dir", path, "--cache-size", "1M"]);
    assert_eq!(small.stop(), Some(0));
    assert_eq!(cache_file_len(&dir), Some(1 << 20));

    let bigger = Proxy::start(&["--cache-dir", path, "--cache-size", "4M"]);
    assert!(
        bigger
            .stderr()
            .contains("(4 MiB, 0 objects; resized from 1 MiB"),
        "start-up lines:\n{}",
        bigger.stderr()
    );
    drop(bigger);
    assert_eq!(cache_file_len(&dir), Some(4 << 20));

    // Without --cache-size the file keeps the size it has.
    let kept = Proxy::start(&["--cache-dir", path]);
    assert!(
        kept.stderr().contains("(4 MiB, 0 objects)"),
        "{}",
        kept.stderr()
    );
}
