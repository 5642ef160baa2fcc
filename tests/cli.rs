//! Start-up: bad configuration exits with status 2 before binding; `LARDER_*` variables
//! configure like their flags.

use crate::support::{run_to_exit, Proxy};

#[test]
fn bad_flags_exit_with_status_2() {
    for args in [
        &["--no-such-flag"][..],
        &["--timeout-idle", "soon"],
        &["--allow", "not-a-cidr"],
        &["--connect-ports", "http"],
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
