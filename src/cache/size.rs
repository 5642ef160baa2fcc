//! Human-readable byte sizes: parsed from `--cache-size`, `--range-whole-below` and
//! `compact --capacity`, printed by larder at start-up and by `larder-cache`.
//!
//! Units are binary multiples (K = 1024), whatever the spelling: `256M`, `256MB` and
//! `256MiB` are all 256 × 2^20 bytes, because that is what people mean when they size a
//! cache file and there is no second set of units to get wrong.

/// The units from the largest down, with their multiples.
const UNITS: [(&str, u64); 4] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
];

/// Parses a size: a decimal number, then optionally (after optional spaces) a unit `K`,
/// `M`, `G` or `T`, each optionally followed by `iB` or `B`, or `B` alone for bytes;
/// case-insensitive. A fraction (`1.5G`) is allowed and rounded down to whole bytes.
///
/// Errors (with a message naming the input) if the text is not of that form, if the value
/// does not fit in 64 bits, or if it is zero bytes.
pub fn parse(text: &str) -> Result<u64, String> {
    match parse_or_zero(text)? {
        0 => Err(format!("size {text:?} must be more than 0 bytes")),
        bytes => Ok(bytes),
    }
}

/// [`parse`] for a size where zero means "off" (`--range-whole-below 0`): the same
/// syntax, and zero (`0`, `0M`, or a fraction below one byte) is allowed.
pub fn parse_or_zero(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let bad = || {
        format!(
            "invalid size {text:?}: expected a number with an optional unit K, M, G or T \
             (e.g. 256M, 4G, 1.5GiB)"
        )
    };
    let unit_at = trimmed
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(unit_at);
    let multiple = unit_multiple(unit.trim_start()).ok_or_else(bad)?;
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    if whole.is_empty() || (number.contains('.') && fraction.is_empty()) {
        return Err(bad());
    }
    // Beyond 18 digits a fraction cannot change a u64 result, and cutting it there keeps
    // 10^digits and digits × 2^40 inside u128.
    let fraction = fraction.get(..18).unwrap_or(fraction);
    let too_large = || format!("size {text:?} is too large");
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    let bytes = if fraction.is_empty() {
        whole.checked_mul(u128::from(multiple))
    } else {
        let digits: u128 = fraction.parse().map_err(|_| bad())?;
        let scale = 10u128.pow(fraction.len() as u32);
        whole
            .checked_mul(u128::from(multiple))
            .and_then(|b| b.checked_add(digits * u128::from(multiple) / scale))
    };
    bytes
        .and_then(|b| u64::try_from(b).ok())
        .ok_or_else(too_large)
}

/// The multiple a unit suffix stands for; `None` if it is not one.
fn unit_multiple(unit: &str) -> Option<u64> {
    let unit = unit.to_ascii_lowercase();
    let (letter, rest) = match unit.char_indices().nth(1) {
        Some((at, _)) => unit.split_at(at),
        None => (unit.as_str(), ""),
    };
    let multiple = match letter {
        "" => return Some(1),
        "b" if rest.is_empty() => return Some(1),
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    matches!(rest, "" | "b" | "ib").then_some(multiple)
}

/// `bytes` for people: below 1 KiB the exact count (`912 B`), else the largest binary unit
/// that keeps the number under 1024, with at most one decimal (`1.5 GiB`, `256 MiB`).
/// [`parse`] reads the result back (to within the rounding of that one decimal).
pub fn human(bytes: u64) -> String {
    for (i, &(name, multiple)) in UNITS.iter().enumerate() {
        if bytes < multiple {
            continue;
        }
        let tenths = (u128::from(bytes) * 10 + u128::from(multiple) / 2) / u128::from(multiple);
        // 1023.96 KiB rounds to 1024.0 KiB: say 1 MiB instead.
        if tenths >= 10_240 && i > 0 {
            return human_in(name_of(i - 1), 10);
        }
        return human_in(name, tenths);
    }
    format!("{bytes} B")
}

fn name_of(i: usize) -> &'static str {
    UNITS.get(i).map_or("B", |&(name, _)| name)
}

fn human_in(unit: &str, tenths: u128) -> String {
    match tenths % 10 {
        0 => format!("{} {unit}", tenths / 10),
        frac => format!("{}.{frac} {unit}", tenths / 10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_binary_multiples_in_any_spelling() {
        for (text, bytes) in [
            ("1048576", 1 << 20),
            ("512k", 512 << 10),
            ("512K", 512 << 10),
            ("256M", 256 << 20),
            ("256MB", 256 << 20),
            ("256mib", 256 << 20),
            ("4G", 4 << 30),
            ("4 GiB", 4 << 30),
            ("2T", 2 << 40),
            ("10B", 10),
            ("10 b", 10),
            (" 64M ", 64 << 20),
        ] {
            assert_eq!(parse(text), Ok(bytes), "{text:?}");
        }
    }

    #[test]
    fn fractions_are_rounded_down_to_whole_bytes() {
        assert_eq!(parse("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse("0.5K"), Ok(512));
        assert_eq!(parse("0.1K"), Ok(102));
        assert_eq!(parse("1.25"), Ok(1));
        assert_eq!(parse("1.0000000000000000000000001G"), Ok(1 << 30));
    }

    #[test]
    fn malformed_sizes_are_rejected_with_the_input_named() {
        for bad in [
            "", " ", "M", "G4", "4X", "4 GB B", "4GiBs", "4iB", "4KK", "-1M", "+1M", "1e3", ".5G",
            "5.G", "1.2.3M", "4 G i B", "4Bi", "½M",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("invalid size"), "{bad:?}: {err}");
            assert!(err.contains(&format!("{bad:?}")), "{bad:?}: {err}");
        }
    }

    #[test]
    fn zero_is_rejected() {
        for zero in ["0", "0M", "0.0001K", "0.4"] {
            let err = parse(zero).unwrap_err();
            assert!(err.contains("more than 0"), "{zero:?}: {err}");
        }
    }

    #[test]
    fn zero_is_allowed_where_it_means_off() {
        for zero in ["0", "0M", "0.0001K", "0.4"] {
            assert_eq!(parse_or_zero(zero), Ok(0), "{zero:?}");
        }
        assert_eq!(parse_or_zero("64M"), Ok(64 << 20));
        let err = parse_or_zero("-1").unwrap_err();
        assert!(err.contains("invalid size"), "{err}");
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        assert_eq!(parse("18446744073709551615"), Ok(u64::MAX));
        for huge in [
            "18446744073709551616",
            "16777216T",
            "99999999999999999999999999999999999999999999",
            "17179869184G",
        ] {
            let err = parse(huge).unwrap_err();
            assert!(err.contains("too large"), "{huge:?}: {err}");
        }
        assert_eq!(parse("16777215T"), Ok(16_777_215 << 40));
    }

    #[test]
    fn human_picks_the_largest_unit_under_1024() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(912), "912 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1024), "1 KiB");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(256 << 20), "256 MiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
        assert_eq!(human((1 << 20) - 1), "1 MiB");
        assert_eq!(human(5 << 40), "5 TiB");
        assert_eq!(human(u64::MAX), "16777216 TiB");
    }

    #[test]
    fn human_output_parses_back() {
        for bytes in [1, 912, 1024, 1536, 256 << 20, 3 << 29, 4 << 30, 7 << 40] {
            assert_eq!(parse(&human(bytes)), Ok(bytes), "{bytes}");
        }
    }
}
