//! Debian version ordering, as dpkg compares versions: epoch, then upstream version, then
//! Debian revision; each compared in runs of non-digits (letters before other characters,
//! `~` before everything, even the end) and runs of digits (by value).

use std::cmp::Ordering;

/// Compares two Debian versions as `dpkg --compare-versions` does.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| compare_part(ua, ub))
        .then_with(|| compare_part(ra, rb))
}

/// `(epoch, upstream, revision)`; a missing epoch is 0, a missing revision empty.
fn split(version: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match version.split_once(':') {
        Some((epoch, rest)) if epoch.bytes().all(|b| b.is_ascii_digit()) => {
            (epoch.parse().unwrap_or(u64::MAX), rest)
        }
        _ => (0, version),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// The weight of a character in a non-digit run.
fn order(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

fn compare_part(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        // A run of non-digits.
        loop {
            let (ca, cb) = (a.first().copied(), b.first().copied());
            let a_digit = ca.is_none_or(|c| c.is_ascii_digit());
            let b_digit = cb.is_none_or(|c| c.is_ascii_digit());
            if a_digit && b_digit {
                break;
            }
            let (oa, ob) = (
                if a_digit { order(None) } else { order(ca) },
                if b_digit { order(None) } else { order(cb) },
            );
            match oa.cmp(&ob) {
                Ordering::Equal => {}
                other => return other,
            }
            if !a_digit {
                a = &a[1..];
            }
            if !b_digit {
                b = &b[1..];
            }
        }
        // A run of digits, by value (leading zeros do not count).
        let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
        let (na, nb) = (digits(a), digits(b));
        let trim = |s: &[u8]| -> Vec<u8> {
            let first = s.iter().position(|&c| c != b'0').unwrap_or(s.len());
            s[first..].to_vec()
        };
        let (da, db) = (trim(&a[..na]), trim(&b[..nb]));
        match da.len().cmp(&db.len()).then_with(|| da.cmp(&db)) {
            Ordering::Equal => {}
            other => return other,
        }
        a = &a[na..];
        b = &b[nb..];
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_as_dpkg_orders_them() {
        let ascending = [
            "0.9", "1.0~rc1", "1.0", "1.0-1", "1.0-1+b1", "1.0-2", "1.0-10", "1.0a", "1.0+dfsg",
            "1.1", "1:0.1",
        ];
        for pair in ascending.windows(2) {
            assert_eq!(compare(pair[0], pair[1]), Ordering::Less, "{pair:?}");
            assert_eq!(compare(pair[1], pair[0]), Ordering::Greater, "{pair:?}");
        }
        assert_eq!(compare("2.10-9", "2.10-10"), Ordering::Less);
        assert_eq!(compare("1.01", "1.1"), Ordering::Equal);
        assert_eq!(compare("1.0-1", "1.0-1"), Ordering::Equal);
        assert_eq!(compare("1.0~~", "1.0~"), Ordering::Less);
    }
}
