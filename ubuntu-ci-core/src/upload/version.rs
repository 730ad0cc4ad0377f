//! Debian package names and versions: syntax checks and dpkg's ordering.
//!
//! A version is `[epoch:]upstream[-revision]` (Debian Policy §5.6.12). Versions are ordered
//! the way `dpkg --compare-versions` orders them, so `1.0` equals `0:1.0` and `1.0~rc1`
//! sorts before `1.0`. File names never carry the epoch; [`DebianVersion::without_epoch`]
//! gives the form they use.

use std::cmp::Ordering;
use std::fmt;

use crate::error::{Error, Result};

/// Longest version or package name accepted; real ones are far shorter.
const MAX_LEN: usize = 255;

/// A parsed Debian version, ordered as dpkg orders versions.
#[derive(Debug, Clone)]
pub struct DebianVersion {
    epoch: Option<u32>,
    upstream: String,
    revision: Option<String>,
}

impl DebianVersion {
    /// Parses `[epoch:]upstream[-revision]`.
    ///
    /// The epoch is a decimal number, the upstream version starts with a digit and holds
    /// ASCII letters, digits and `.+~-` (a `-` only when a revision follows), the revision
    /// holds letters, digits and `.+~`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) saying what is wrong.
    pub fn parse(text: &str) -> Result<DebianVersion> {
        let fail =
            |why: &str| Error::invalid(format!("invalid Debian version {}: {why}", quoted(text)));
        if text.is_empty() {
            return Err(fail("empty"));
        }
        if text.len() > MAX_LEN {
            return Err(fail("too long"));
        }
        let (epoch, rest) = match text.split_once(':') {
            Some((epoch, rest)) => {
                if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(fail("the epoch (before ':') must be a number"));
                }
                let epoch = epoch
                    .parse::<u32>()
                    .map_err(|_| fail("the epoch is too large"))?;
                (Some(epoch), rest)
            }
            None => (None, text),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((upstream, revision)) => (upstream, Some(revision)),
            None => (rest, None),
        };
        if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(fail("the upstream version must start with a digit"));
        }
        if let Some(bad) = upstream
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | '-')))
        {
            return Err(fail(&format!(
                "the upstream version contains {}",
                describe_char(bad)
            )));
        }
        if let Some(revision) = revision {
            if revision.is_empty() {
                return Err(fail("the Debian revision after '-' is empty"));
            }
            if let Some(bad) = revision
                .chars()
                .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~')))
            {
                return Err(fail(&format!(
                    "the Debian revision contains {}",
                    describe_char(bad)
                )));
            }
        }
        Ok(DebianVersion {
            epoch,
            upstream: upstream.to_owned(),
            revision: revision.map(str::to_owned),
        })
    }

    /// The epoch, 0 when absent.
    pub fn epoch(&self) -> u32 {
        self.epoch.unwrap_or(0)
    }

    /// Whether the version was written with an explicit epoch (even `0:`).
    pub fn has_epoch(&self) -> bool {
        self.epoch.is_some()
    }

    /// The upstream part.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The Debian revision, absent for native packages.
    pub fn revision(&self) -> Option<&str> {
        self.revision.as_deref()
    }

    /// Whether both versions are equal once their epochs are ignored.
    pub fn eq_ignoring_epoch(&self, other: &DebianVersion) -> bool {
        compare_part(&self.upstream, &other.upstream) == Ordering::Equal
            && compare_part(
                self.revision.as_deref().unwrap_or(""),
                other.revision.as_deref().unwrap_or(""),
            ) == Ordering::Equal
    }

    /// `upstream[-revision]`: the version as it appears in file names.
    pub fn without_epoch(&self) -> String {
        match &self.revision {
            Some(revision) => format!("{}-{revision}", self.upstream),
            None => self.upstream.clone(),
        }
    }
}

impl fmt::Display for DebianVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(epoch) = self.epoch {
            write!(f, "{epoch}:")?;
        }
        f.write_str(&self.without_epoch())
    }
}

impl PartialEq for DebianVersion {
    fn eq(&self, other: &DebianVersion) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for DebianVersion {}

impl PartialOrd for DebianVersion {
    fn partial_cmp(&self, other: &DebianVersion) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DebianVersion {
    fn cmp(&self, other: &DebianVersion) -> Ordering {
        self.epoch()
            .cmp(&other.epoch())
            .then_with(|| compare_part(&self.upstream, &other.upstream))
            .then_with(|| {
                compare_part(
                    self.revision.as_deref().unwrap_or(""),
                    other.revision.as_deref().unwrap_or(""),
                )
            })
    }
}

/// dpkg's weight of a non-digit character: `~` sorts before the end, letters before others.
fn weight(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`: alternating non-digit and digit runs, digits compared as numbers.
fn compare_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0usize, 0usize);
    let digit_at = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit_at(a, i)) || (j < b.len() && !digit_at(b, j)) {
            let (wa, wb) = (weight(a.get(i).copied()), weight(b.get(j).copied()));
            if wa != wb {
                return wa.cmp(&wb);
            }
            i = i.saturating_add(1);
            j = j.saturating_add(1);
        }
        while a.get(i) == Some(&b'0') {
            i = i.saturating_add(1);
        }
        while b.get(j) == Some(&b'0') {
            j = j.saturating_add(1);
        }
        let mut first_difference = Ordering::Equal;
        while digit_at(a, i) && digit_at(b, j) {
            if first_difference == Ordering::Equal {
                first_difference = a.get(i).cmp(&b.get(j));
            }
            i = i.saturating_add(1);
            j = j.saturating_add(1);
        }
        if digit_at(a, i) {
            return Ordering::Greater;
        }
        if digit_at(b, j) {
            return Ordering::Less;
        }
        if first_difference != Ordering::Equal {
            return first_difference;
        }
    }
    Ordering::Equal
}

/// Checks a source or binary package name: `[a-z0-9][a-z0-9+.-]+` (Debian Policy §5.6.1).
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) saying what is wrong.
pub fn validate_package_name(name: &str) -> Result<()> {
    let fail = |why: &str| {
        Error::invalid(format!(
            "invalid package name {}: {why} (Debian Policy 5.6.1: [a-z0-9][a-z0-9+.-]+)",
            quoted(name)
        ))
    };
    if name.len() < 2 {
        return Err(fail("too short"));
    }
    if name.len() > MAX_LEN {
        return Err(fail("too long"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Err(fail("must start with a lowercase letter or a digit"));
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '.' | '-')))
    {
        return Err(fail(&format!("contains {}", describe_char(bad))));
    }
    Ok(())
}

/// Quotes outside text for a message, escaping control characters and cutting long text.
pub(crate) fn quoted(text: &str) -> String {
    const MAX_CHARS: usize = 80;
    if text.chars().nth(MAX_CHARS).is_some() {
        let head: String = text.chars().take(MAX_CHARS).collect();
        format!("{head:?}…")
    } else {
        format!("{text:?}")
    }
}

/// Names a character for a message, readable even when it is invisible.
pub(crate) fn describe_char(c: char) -> String {
    if c.is_control() || c.is_whitespace() {
        format!("the character U+{:04X}", u32::from(c))
    } else {
        format!("the character {c:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(text: &str) -> DebianVersion {
        DebianVersion::parse(text).unwrap()
    }

    #[test]
    fn parses_parts() {
        let version = v("1:2.10-3ubuntu1");
        assert_eq!(version.epoch(), 1);
        assert!(version.has_epoch());
        assert_eq!(version.upstream(), "2.10");
        assert_eq!(version.revision(), Some("3ubuntu1"));
        assert_eq!(version.without_epoch(), "2.10-3ubuntu1");
        assert_eq!(version.to_string(), "1:2.10-3ubuntu1");

        let native = v("1.5~dev.1");
        assert_eq!(native.revision(), None);
        assert!(!native.has_epoch());

        // The last hyphen separates the revision; earlier ones belong to upstream.
        let hyphens = v("1.0-beta-2");
        assert_eq!(hyphens.upstream(), "1.0-beta");
        assert_eq!(hyphens.revision(), Some("2"));
    }

    #[test]
    fn rejects_malformed_versions() {
        for bad in [
            "",
            "abc",
            "a1.0",
            ":1.0",
            "x:1.0",
            "1.0-",
            "1.0_1",
            "1.0 1",
            "1.0-1_2",
            "1:",
            "99999999999:1.0",
            "1.0-1:2",
            "-1",
            "1.0\n",
        ] {
            let err = DebianVersion::parse(bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{bad:?}");
            assert!(err.message().contains("invalid Debian version"), "{err}");
        }
    }

    #[test]
    fn orders_like_dpkg() {
        // Each pair is strictly increasing, as `dpkg --compare-versions a lt b` says.
        for (lower, higher) in [
            ("1.0~rc1", "1.0"),
            ("1.0", "1.0+dfsg"),
            ("1.0", "1.0.1"),
            ("1.0-1", "1.0-1ubuntu1"),
            ("1.0-1~bpo1", "1.0-1"),
            ("1.9", "1.10"),
            ("2.10-3", "1:1.0-1"),
            ("1.0a", "1.0b"),
            ("1.0z", "1.0+"),
            ("1.0~~", "1.0~"),
            ("1.0", "1.0a"),
        ] {
            assert!(v(lower) < v(higher), "{lower} < {higher}");
            assert!(v(higher) > v(lower), "{higher} > {lower}");
        }
        for (a, b) in [
            ("1.0", "0:1.0"),
            ("1.0", "1.0-0"),
            ("1.01", "1.1"),
            ("1.0-01", "1.0-1"),
        ] {
            assert_eq!(v(a), v(b), "{a} == {b}");
        }
    }

    #[test]
    fn package_names() {
        for good in ["hello", "hello-ci", "g++", "libfoo2.0", "0ad", "python3.12"] {
            validate_package_name(good).unwrap();
        }
        for bad in [
            "", "a", "Hello", "-foo", ".foo", "+foo", "foo_bar", "foo bar", "héllo",
        ] {
            let err = validate_package_name(bad).unwrap_err();
            assert!(err.message().contains("invalid package name"), "{err}");
        }
    }

    proptest! {
        #[test]
        fn parse_and_display_round_trip(text in "(0:|[1-9][0-9]{0,2}:)?[0-9][A-Za-z0-9.+~]{0,12}(-[A-Za-z0-9.+~]{1,8})?") {
            let version = DebianVersion::parse(&text).unwrap();
            prop_assert_eq!(version.to_string(), text);
        }

        #[test]
        fn ordering_is_a_total_order(a in "[0-9][0-9a-c.+~]{0,6}", b in "[0-9][0-9a-c.+~]{0,6}", c in "[0-9][0-9a-c.+~]{0,6}") {
            let (a, b, c) = (v(&a), v(&b), v(&c));
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            if a <= b && b <= c {
                prop_assert!(a <= c);
            }
        }

        #[test]
        fn arbitrary_text_is_accepted_only_when_well_formed(text in "\\PC{0,20}") {
            match DebianVersion::parse(&text) {
                Ok(version) => {
                    prop_assert!(version.upstream().starts_with(|c: char| c.is_ascii_digit()));
                    prop_assert!(text.is_ascii());
                }
                Err(err) => prop_assert_eq!(err.kind(), crate::ErrorKind::InvalidInput),
            }
        }
    }
}
