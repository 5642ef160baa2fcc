//! HTTP-date (RFC 9110 §5.6.7): parsing the three forms recipients must accept and
//! writing the one senders must use, as unix seconds.
//!
//! The calendar arithmetic is Howard Hinnant's civil-from-days algorithm, done by
//! hand so that no date crate is needed; only dates from 1970 to 9999 exist here.

use std::cell::RefCell;

const SHORT_DAYS: [&[u8]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
const LONG_DAYS: [&[u8]; 7] = [
    b"Sunday",
    b"Monday",
    b"Tuesday",
    b"Wednesday",
    b"Thursday",
    b"Friday",
    b"Saturday",
];
const MONTHS: [&[u8]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// 9999-12-31 23:59:59 GMT, the last instant a four-digit year can write.
const LAST_WRITABLE: u64 = 253_402_300_799;

/// Parses an HTTP-date into unix seconds, or `None` if `value` is not one.
///
/// Accepted forms (RFC 9110 §5.6.7), surrounding whitespace ignored:
/// - IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`;
/// - obsolete RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT`, where a two-digit year
///   00–69 means 20xx and 70–99 means 19xx (the common fixed pivot rather than the
///   RFC's "not more than 50 years ahead of now", so no clock is needed);
/// - asctime `Sun Nov  6 08:49:37 1994` (or `Nov 06`).
///
/// The layout is the grammar's: exactly one space between fields (two before
/// asctime's one-digit day), two-digit days otherwise, and a four-digit year except
/// in the dashed RFC 850 date, whose year has two. So `Thu, 18-Aug-2050 02:01:18 GMT` and
/// `Thu, 18  Aug  2050 02:01:18 GMT` are not dates; RFC 9111 §5.3 makes such an
/// Expires a time in the past, and the http-tests cache-tests suite checks that.
///
/// To be robust as §5.6.7 encourages, day and month names are matched without
/// regard to case, either day-name form is accepted in every form, and the day name
/// is not checked against the date. Everything else is checked: the day exists in
/// that month, hours 0–23, minutes 0–59, seconds 0–60 (a leap second). Dates before
/// 1970 are `None`.
pub fn parse_http_date(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    // Servers send IMF-fixdates: read by their fixed layout, without splitting the
    // value into words. Anything else of that length takes the general way.
    match <&[u8; IMF_FIXDATE_LEN]>::try_from(value) {
        Ok(fixed) => parse_fixdate(fixed).or_else(|| parse_words(value)),
        Err(_) => parse_words(value),
    }
}

/// An IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`, checked as [`parse_words`]
/// checks it.
fn parse_fixdate(value: &[u8; IMF_FIXDATE_LEN]) -> Option<u64> {
    let [w1, w2, w3, b',', b' ', d1, d2, b' ', m1, m2, m3, b' ', y1, y2, y3, y4, b' ', ref time @ .., b' ', g1, g2, g3] =
        *value
    else {
        return None;
    };
    if !is_day_name(&[w1, w2, w3]) || !is_gmt(&[g1, g2, g3]) {
        return None;
    }
    instant(
        number(&[d1, d2], 2, 2)?,
        &[m1, m2, m3],
        number(&[y1, y2, y3, y4], 4, 4)?,
        time,
    )
}

/// Every form, its words split at single spaces.
fn parse_words(value: &[u8]) -> Option<u64> {
    let mut words: [&[u8]; 6] = [&[]; 6];
    let mut count = 0;
    for word in value.split(|&b| b == b' ') {
        *words.get_mut(count)? = word;
        count += 1;
    }
    let (day, month, year, time) = match words.get(..count)? {
        [weekday, day, month, year, time, gmt] if weekday.ends_with(b",") => {
            if !is_day_name(weekday.strip_suffix(b",")?) || !is_gmt(gmt) {
                return None;
            }
            (number(day, 2, 2)?, *month, number(year, 4, 4)?, *time)
        }
        [weekday, date, time, gmt] => {
            if !is_day_name(weekday.strip_suffix(b",")?) || !is_gmt(gmt) {
                return None;
            }
            let mut parts = date.split(|&b| b == b'-');
            let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            let year = match number(year, 2, 2)? {
                y @ 0..=69 => 2000 + y,
                y => 1900 + y,
            };
            (number(day, 2, 2)?, month, year, *time)
        }
        [weekday, month, [], day, time, year] => {
            if !is_day_name(weekday) {
                return None;
            }
            (number(day, 1, 1)?, *month, number(year, 4, 4)?, *time)
        }
        [weekday, month, day, time, year] => {
            if !is_day_name(weekday) {
                return None;
            }
            (number(day, 2, 2)?, *month, number(year, 4, 4)?, *time)
        }
        _ => return None,
    };
    instant(day, month, year, time)
}

/// The instant of a date whose numbers are read: `None` if the month is no month's
/// name, the day is not in that month, the year is before 1970 or the time is no time.
fn instant(day: u64, month: &[u8], year: u64, time: &[u8]) -> Option<u64> {
    let month = month_index(month)?;
    if year < 1970 || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let seconds = time_of_day(time)?;
    Some(days_from_civil(year, month, day) * 86_400 + seconds)
}

/// Appends the field line `Date: <IMF-fixdate>\r\n` for `secs`, e.g.
/// `Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n` (RFC 9110 §5.6.7, §6.6.1). Instants
/// after 9999-12-31 23:59:59 are written as that one.
///
/// Forwarding writes the current second into every response that lacks a Date, so
/// the last line written is kept (per thread) and copied, whole, while the second
/// lasts.
pub fn push_date_field(out: &mut Vec<u8>, secs: u64) {
    let secs = secs.min(LAST_WRITABLE);
    // Borrowed in place, not copied out and back as a `Cell` would: this runs for
    // every forwarded response without a Date.
    LAST_DATE.with_borrow_mut(|(at, line)| {
        if *at != secs {
            if let Some(date) = line.get_mut(6..6 + IMF_FIXDATE_LEN) {
                date.copy_from_slice(&imf_fixdate(secs));
            }
            *at = secs;
        }
        out.extend_from_slice(line);
    });
}

/// The length of every IMF-fixdate with a four-digit year.
const IMF_FIXDATE_LEN: usize = 29;

/// `Date: `, the date and CRLF.
const DATE_FIELD_LEN: usize = 6 + IMF_FIXDATE_LEN + 2;

thread_local! {
    /// The last second [`push_date_field`] wrote and its line; `u64::MAX` (never a
    /// writable second) until it has written one.
    static LAST_DATE: RefCell<(u64, [u8; DATE_FIELD_LEN])> =
        const { RefCell::new((u64::MAX, *b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n")) };
}

/// `secs` (at most [`LAST_WRITABLE`]) as an IMF-fixdate.
fn imf_fixdate(secs: u64) -> [u8; IMF_FIXDATE_LEN] {
    let days = secs / 86_400;
    let (year, month, day) = civil_from_days(days);
    let in_day = secs % 86_400;
    let two = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    let mut text = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    // 1970-01-01 was a Thursday.
    let parts: [(usize, &[u8]); 8] = [
        (0, SHORT_DAYS[((days + 4) % 7) as usize]),
        (5, &two(day)),
        (8, MONTHS[month % 12]),
        (12, &two(year / 100)),
        (14, &two(year % 100)),
        (17, &two(in_day / 3600)),
        (20, &two(in_day / 60 % 60)),
        (23, &two(in_day % 60)),
    ];
    for (at, part) in parts {
        if let Some(dst) = text.get_mut(at..at + part.len()) {
            dst.copy_from_slice(part);
        }
    }
    text
}

/// The month (0 = January) that `name` names, in any case: one of [`MONTHS`].
///
/// Every hit reads its stored Date; the name is lowercased once and matched as a
/// whole rather than compared with each month's in turn.
fn month_index(name: &[u8]) -> Option<usize> {
    let &[a, b, c] = name else {
        return None;
    };
    Some(match [a, b, c].map(|x| x.to_ascii_lowercase()) {
        [b'j', b'a', b'n'] => 0,
        [b'f', b'e', b'b'] => 1,
        [b'm', b'a', b'r'] => 2,
        [b'a', b'p', b'r'] => 3,
        [b'm', b'a', b'y'] => 4,
        [b'j', b'u', b'n'] => 5,
        [b'j', b'u', b'l'] => 6,
        [b'a', b'u', b'g'] => 7,
        [b's', b'e', b'p'] => 8,
        [b'o', b'c', b't'] => 9,
        [b'n', b'o', b'v'] => 10,
        [b'd', b'e', b'c'] => 11,
        _ => return None,
    })
}

fn is_day_name(word: &[u8]) -> bool {
    if let &[a, b, c] = word {
        // The short names, the ones IMF-fixdates carry, matched as `month_index`
        // matches months.
        return matches!(
            [a, b, c].map(|x| x.to_ascii_lowercase()),
            [b's', b'u', b'n']
                | [b'm', b'o', b'n']
                | [b't', b'u', b'e']
                | [b'w', b'e', b'd']
                | [b't', b'h', b'u']
                | [b'f', b'r', b'i']
                | [b's', b'a', b't']
        );
    }
    LONG_DAYS.iter().any(|d| d.eq_ignore_ascii_case(word))
}

fn is_gmt(word: &[u8]) -> bool {
    word.eq_ignore_ascii_case(b"GMT")
}

/// A run of `min..=max` ASCII digits (at most 4, so it cannot overflow).
fn number(digits: &[u8], min: usize, max: usize) -> Option<u64> {
    if digits.len() < min || digits.len() > max || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// `HH:MM:SS` → seconds since midnight.
fn time_of_day(time: &[u8]) -> Option<u64> {
    let [h1, h2, b':', m1, m2, b':', s1, s2] = *time else {
        return None;
    };
    let hour = number(&[h1, h2], 2, 2)?;
    let minute = number(&[m1, m2], 2, 2)?;
    let second = number(&[s1, s2], 2, 2)?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(hour * 3600 + minute * 60 + second)
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

/// Days in `month` (0 = January) of `year`.
fn days_in_month(year: u64, month: usize) -> u64 {
    match month {
        1 if is_leap(year) => 29,
        1 => 28,
        3 | 5 | 8 | 10 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to `year`-`month`-`day` (month 0 = January, year ≥ 1970).
fn days_from_civil(year: u64, month: usize, day: u64) -> u64 {
    // The year starts in March so that the leap day is the last day of the year.
    let year = if month < 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year % 400;
    let march_month = (month as u64 + 10) % 12;
    let day_of_year = (153 * march_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719_468 days lie between 0000-03-01 and 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of `days_from_civil`: the proleptic Gregorian date `days` after
/// 1970-01-01 as (year, month 0 = January, day of month). Also `larder-cache`'s
/// UTC times.
pub fn civil_from_days(days: u64) -> (u64, usize, u64) {
    let days = days + 719_468;
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * march_month + 2) / 5 + 1;
    let month = ((march_month + 2) % 12) as usize;
    let year = era * 400 + year_of_era + u64::from(month < 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testing::{mutate, next_u64};

    const SUNDAY_1994: u64 = 784_111_777;

    /// The date of the field line written for `secs`.
    fn written(secs: u64) -> String {
        let mut out = Vec::new();
        push_date_field(&mut out, secs);
        let line = String::from_utf8(out).unwrap();
        let date = line.strip_prefix("Date: ").unwrap().strip_suffix("\r\n");
        date.unwrap().to_string()
    }

    #[test]
    fn the_three_rfc_9110_examples_are_the_same_instant() {
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse_http_date(form.as_bytes()),
                Some(SUNDAY_1994),
                "{form}"
            );
        }
    }

    #[test]
    fn two_digit_years_pivot_at_70() {
        let y2069 = parse_http_date(b"Monday, 01-Jan-69 00:00:00 GMT").unwrap();
        assert_eq!(written(y2069), "Tue, 01 Jan 2069 00:00:00 GMT");
        let y1970 = parse_http_date(b"Thursday, 01-Jan-70 00:00:00 GMT");
        assert_eq!(y1970, Some(0));
        let y2000 = parse_http_date(b"Saturday, 01-Jan-00 00:00:00 GMT").unwrap();
        assert_eq!(written(y2000), "Sat, 01 Jan 2000 00:00:00 GMT");
    }

    #[test]
    fn leap_days_exist_only_in_leap_years() {
        assert_eq!(
            parse_http_date(b"Tue, 29 Feb 2000 23:59:59 GMT"),
            Some(951_868_799)
        );
        assert_eq!(parse_http_date(b"Thu, 29 Feb 1900 00:00:00 GMT"), None);
        assert_eq!(parse_http_date(b"Fri, 29 Feb 2100 00:00:00 GMT"), None);
        assert!(parse_http_date(b"Sat, 29 Feb 2400 00:00:00 GMT").is_some());
        assert_eq!(parse_http_date(b"Mon, 31 Apr 2024 00:00:00 GMT"), None);
    }

    #[test]
    fn names_ignore_case_and_surrounding_space() {
        assert_eq!(
            parse_http_date(b"  sun, 06 NOV 1994 08:49:37 gmt \t"),
            Some(SUNDAY_1994)
        );
        assert_eq!(
            parse_http_date(b"Sun Nov 06 08:49:37 1994"),
            Some(SUNDAY_1994)
        );
        assert_eq!(
            parse_http_date(b"SUNDAY, 06-nov-94 08:49:37 GMT"),
            Some(SUNDAY_1994)
        );
    }

    #[test]
    fn the_suites_valid_expires_forms_parse() {
        // cache-tests expires-parse: 32bit, far-future, rfc850, ansi-c, wrong-case-*.
        for (form, written_as) in [
            (
                "Tue, 19 Jan 2038 14:14:08 GMT",
                "Tue, 19 Jan 2038 14:14:08 GMT",
            ),
            (
                "Sun, 21 Nov 2286 04:46:39 GMT",
                "Sun, 21 Nov 2286 04:46:39 GMT",
            ),
            (
                "Thursday, 18-Aug-50 02:01:18 GMT",
                "Thu, 18 Aug 2050 02:01:18 GMT",
            ),
            ("Thu Aug  8 02:01:18 2050", "Mon, 08 Aug 2050 02:01:18 GMT"),
            (
                "THU, 18 Aug 2050 02:01:18 GMT",
                "Thu, 18 Aug 2050 02:01:18 GMT",
            ),
            (
                "Thu, 18 AUG 2050 02:01:18 GMT",
                "Thu, 18 Aug 2050 02:01:18 GMT",
            ),
            (
                "Thu, 18 Aug 2050 02:01:18 gMT",
                "Thu, 18 Aug 2050 02:01:18 GMT",
            ),
        ] {
            let secs = parse_http_date(form.as_bytes());
            assert_eq!(secs.map(written), Some(written_as.to_string()), "{form}");
        }
    }

    #[test]
    fn layouts_outside_the_grammar_are_rejected() {
        for bad in [
            // cache-tests expires-parse: the invalid-* forms.
            "Thu, 18 Aug 2050 02:01:18 UTC",
            "Thu, 18 Aug 2050 02:01:18 AEST",
            "Thu, 18 Aug 50 02:01:18 GMT",
            "Thu 18 Aug 2050 02:01:18 GMT",
            "Thu, 18  Aug  2050 02:01:18 GMT",
            "Thu, 18-Aug-2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02.01.18 GMT",
            "Thu, 18 Aug 2050 2:01:18 GMT",
            // Any repeated space, and tabs between fields.
            "Sun,  06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994  08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37  GMT",
            "Sun,\t06 Nov 1994 08:49:37 GMT",
            "Sunday,  06-Nov-94 08:49:37 GMT",
            "Sun  Nov 06 08:49:37 1994",
            "Sun Nov  06 08:49:37 1994",
            "Sun Nov   6 08:49:37 1994",
            "Sun Nov  6  08:49:37 1994",
            // Days of one digit outside asctime's padded form, and asctime unpadded.
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sunday, 6-Nov-94 08:49:37 GMT",
            "Sun Nov 6 08:49:37 1994",
            // Four-digit years in the dashed date.
            "Sunday, 06-Nov-1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn junk_and_out_of_range_fields_are_rejected() {
        for junk in [
            "",
            "0",
            "-1",
            "now",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 32 Jan 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Nov 1994 08:49:61 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Nov +994 08:49:37 GMT",
            "Sunday, 06-Nov-94-1 08:49:37 GMT",
            "Sunday, 06-Nov-994 08:49:37 GMT",
            "Funday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 94",
            "Sun Nov 123 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(junk.as_bytes()), None, "{junk:?}");
        }
    }

    /// The names are matched as comparing each known one without regard to case
    /// would match them, over every three-letter word of letters in either case and
    /// a few bytes that case-folding by a bit would confuse with letters.
    #[test]
    fn names_match_as_a_case_blind_comparison_does() {
        let alphabet: Vec<u8> = (b'a'..=b'z')
            .chain(b'A'..=b'Z')
            .chain(*b"@[`{\x80\xc1\xe1 ")
            .collect();
        for &a in &alphabet {
            for &b in &alphabet {
                for &c in &alphabet {
                    let word = [a, b, c];
                    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(&word));
                    assert_eq!(month_index(&word), month, "{word:?}");
                    let day = SHORT_DAYS.iter().any(|d| d.eq_ignore_ascii_case(&word));
                    assert_eq!(is_day_name(&word), day, "{word:?}");
                }
            }
        }
        assert!(is_day_name(b"WEDNESDAY") && !is_day_name(b"Wednesda"));
        assert_eq!(month_index(b"Sept"), None);
    }

    #[test]
    fn a_leap_second_is_accepted() {
        assert_eq!(
            parse_http_date(b"Sat, 31 Dec 2016 23:59:60 GMT"),
            parse_http_date(b"Sun, 01 Jan 2017 00:00:00 GMT")
        );
    }

    #[test]
    fn writes_imf_fixdate() {
        assert_eq!(written(SUNDAY_1994), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(written(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(written(951_868_799), "Tue, 29 Feb 2000 23:59:59 GMT");
    }

    /// The text kept for the last second is reused only for that second, and what
    /// is already in the vector stays.
    #[test]
    fn the_kept_date_follows_the_second() {
        for secs in [SUNDAY_1994, SUNDAY_1994, SUNDAY_1994 + 1, SUNDAY_1994, 0, 0] {
            let mut out = b"X: y\r\n".to_vec();
            push_date_field(&mut out, secs);
            let mut fresh = b"X: y\r\nDate: ".to_vec();
            fresh.extend_from_slice(&imf_fixdate(secs));
            fresh.extend_from_slice(b"\r\n");
            assert_eq!(out, fresh, "{secs}");
            assert_eq!(parse_http_date(&out[12..41]), Some(secs));
        }
        assert_eq!(written(SUNDAY_1994 + 1), "Sun, 06 Nov 1994 08:49:38 GMT");
        assert_eq!(written(SUNDAY_1994), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn writing_clamps_past_year_9999() {
        assert_eq!(written(LAST_WRITABLE), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(written(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn writing_then_parsing_round_trips() {
        let mut rng = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let secs = next_u64(&mut rng) % (LAST_WRITABLE + 1);
            assert_eq!(parse_http_date(written(secs).as_bytes()), Some(secs));
        }
    }

    #[test]
    fn mutated_dates_never_panic() {
        let mut rng = 42;
        let alphabet = b" ,-:0123456789GMTSunNov\t";
        for seed in [
            &b"Sun, 06 Nov 1994 08:49:37 GMT"[..],
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 1994",
        ] {
            for _ in 0..20_000 {
                let mut input = seed.to_vec();
                mutate(&mut input, &mut rng, alphabet);
                let _ = parse_http_date(&input);
            }
        }
    }

    /// The fixed-layout reading is a shortcut: whatever it reads, the general one
    /// reads the same, over valid dates and mutations of them alike.
    #[test]
    fn the_fixdate_reading_agrees_with_the_general_one() {
        let mut rng = 7;
        let mut read = 0;
        let alphabet = b" ,:0123456789GMTgmtSunSATnovDec\t\x00";
        for _ in 0..20_000 {
            let mut input = written(next_u64(&mut rng) % (LAST_WRITABLE + 1)).into_bytes();
            if next_u64(&mut rng).is_multiple_of(2) {
                mutate(&mut input, &mut rng, alphabet);
            }
            let Ok(fixed) = <&[u8; IMF_FIXDATE_LEN]>::try_from(&input[..]) else {
                continue;
            };
            if let Some(secs) = parse_fixdate(fixed) {
                read += 1;
                assert_eq!(parse_words(&input), Some(secs), "{input:?}");
            }
        }
        assert!(read > 5_000, "the fixed layout read only {read} dates");
    }
}
