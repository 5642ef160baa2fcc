//! The system's `crypt(3)` (libxcrypt on Debian), which checks bcrypt (`$2y$`, `$2b$`,
//! `$2a$`), SHA-crypt (`$5$`, `$6$`) and MD5-crypt (`$1$`) hashes. It is declared by
//! hand and linked directly, as `sys.rs` does for the C library: no crate is added for
//! it. The reentrant `crypt_rn` is used, with a work area per thread, because the
//! verifications run on two helper threads at once.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};

/// `sizeof(struct crypt_data)` in libxcrypt's `<crypt.h>` (its fields are sized to add up
/// to exactly this: 32 KiB).
const CRYPT_DATA_SIZE: usize = 32768;

#[link(name = "crypt")]
extern "C" {
    /// Hashes `phrase` with the method and salt of `setting` into `data` (of `size`
    /// bytes); returns a pointer to the hash in `data`, or null on any failure.
    fn crypt_rn(
        phrase: *const c_char,
        setting: *const c_char,
        data: *mut c_void,
        size: c_int,
    ) -> *mut c_char;
}

thread_local! {
    /// The work area of this thread: 32 KiB, on the heap, made once per thread.
    /// `u128`s, so that it is aligned for whatever the hashing methods keep in it.
    static DATA: RefCell<Box<[u128]>> =
        RefCell::new(vec![0u128; CRYPT_DATA_SIZE / 16].into_boxed_slice());
}

/// The hash of `password` made with the method and salt of `setting` (a stored hash),
/// or `None` if the password holds a NUL byte or the library refuses the setting.
pub(super) fn crypt(password: &[u8], setting: &str) -> Option<Vec<u8>> {
    let phrase = CString::new(password).ok()?;
    let setting = CString::new(setting).ok()?;
    DATA.with(|data| {
        let mut data = data.borrow_mut();
        // libxcrypt asks for a zeroed area before the first use; zeroing it each time
        // also leaves nothing of the last password in it.
        data.fill(0);
        let size = c_int::try_from(data.len() * 16).ok()?;
        // SAFETY: both strings are NUL-terminated and outlive the call; `data` is a
        // writable, zeroed area of `size` bytes that only this thread uses. The result
        // is null or points into `data`, to a NUL-terminated string read before `data`
        // is touched again.
        let out = unsafe {
            let p = crypt_rn(
                phrase.as_ptr(),
                setting.as_ptr(),
                data.as_mut_ptr().cast(),
                size,
            );
            if p.is_null() {
                return None;
            }
            CStr::from_ptr(p).to_bytes().to_vec()
        };
        data.fill(0);
        // libxcrypt's failure token ("*0" or "*1") when it returns one instead of null.
        if out.first() == Some(&b'*') {
            return None;
        }
        Some(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl passwd -5 -salt saltsalt secret` and `openssl passwd -6 -salt saltsalt
    /// secret`; bcrypt and MD5-crypt made by `htpasswd -nbB` and `openssl passwd -1`.
    pub(crate) const VECTORS: [(&str, &str); 4] = [
        (
            "secret",
            "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA",
        ),
        (
            "secret",
            "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1",
        ),
        (
            "p",
            "$2y$05$sUGxuQHgKXHKARE0IQ4V9OrQ8QXXu.0pGdbFbUHVUKtgLnuZw.inK",
        ),
        ("secret", "$1$saltsalt$9xy1btjgzLYfb7hivXtC//"),
    ];

    #[test]
    fn crypt_reproduces_stored_hashes() {
        for (password, hash) in VECTORS {
            assert_eq!(
                crypt(password.as_bytes(), hash).as_deref(),
                Some(hash.as_bytes()),
                "{hash}"
            );
            assert_ne!(
                crypt(b"wrong", hash).as_deref(),
                Some(hash.as_bytes()),
                "{hash}"
            );
        }
    }

    #[test]
    fn crypt_refuses_nul_bytes_and_unknown_methods() {
        assert_eq!(crypt(b"a\0b", VECTORS[0].1), None);
        assert_eq!(crypt(b"secret", "$apr1$abc$def"), None);
        assert_eq!(crypt(b"secret", "{SHA}x"), None);
    }

    #[test]
    fn md5_crypt_by_hand_agrees_with_the_library() {
        for password in [
            "",
            "p",
            "secret",
            "a much longer password, past sixteen bytes",
        ] {
            let mine = super::super::md5::md5_crypt(password.as_bytes(), b"$1$saltsalt$", "$1$");
            assert_eq!(
                mine,
                crypt(password.as_bytes(), "$1$saltsalt$"),
                "{password:?}"
            );
        }
    }
}
