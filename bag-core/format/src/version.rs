//! PEP 440 version ordering for `Dataset_Version.Version`.
//!
//! Dataset versions are released `MAJOR.MINOR.PATCH` or development
//! `<release>.post1.devN`; they compare by PEP 440, not as semver or strings:
//! `0.4.0 < 0.4.0.post1.dev3 < 0.4.0.post1 < 0.4.1`.

use std::cmp::Ordering;
use std::fmt;

/// A parsed PEP 440 version (epoch, release, pre, post, dev; a local label is kept for display
/// and compared last as text).
///
/// ```
/// use deriva_bag_format::version::Pep440;
/// let v = |s| Pep440::parse(s).unwrap();
/// assert!(v("0.4.0") < v("0.4.0.post1.dev3"));
/// assert!(v("0.4.0.post1.dev3") < v("0.4.0.post1"));
/// assert!(v("1.0.0rc1") < v("1.0.0"));
/// assert!(v("1.0.0.dev1") < v("1.0.0a1"));
/// assert!(v("0.10.0") > v("0.9.0"));
/// assert_eq!(v("1.0"), v("1.0.0"));
/// ```
#[derive(Debug, Clone)]
pub struct Pep440 {
    text: String,
    epoch: u64,
    release: Vec<u64>,
    /// (0 = a, 1 = b, 2 = rc, number)
    pre: Option<(u8, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    local: Option<String>,
}

impl Pep440 {
    /// Parses a version; `None` when it is not PEP 440.
    pub fn parse(text: &str) -> Option<Pep440> {
        let original = text;
        let s = text.trim().to_ascii_lowercase();
        let s = s.strip_prefix('v').unwrap_or(&s);
        let (s, local) = match s.split_once('+') {
            Some((v, l)) if !l.is_empty() => (v, Some(l.to_string())),
            Some(_) => return None,
            None => (s, None),
        };
        let (epoch, s) = match s.split_once('!') {
            Some((e, rest)) => (e.parse().ok()?, rest),
            None => (0, s),
        };
        let bytes = s.as_bytes();
        let mut i = 0;
        let mut release = Vec::new();
        loop {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if start == i {
                return None;
            }
            release.push(s[start..i].parse().ok()?);
            if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
                i += 1;
            } else {
                break;
            }
        }
        let mut rest: String = s[i..].to_string();
        let mut pre = None;
        let mut post = None;
        let mut dev = None;
        let trim_sep = |r: &str| r.strip_prefix(['.', '-', '_']).unwrap_or(r).to_string();
        // `<word>[sep]N` → (N, remainder); a missing number is 0 (PEP 440 normalization).
        let take_num = |r: &str| -> (u64, String) {
            let r = r.strip_prefix(['.', '-', '_']).unwrap_or(r);
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            (r[..n].parse().unwrap_or(0), r[n..].to_string())
        };
        // Pre-release: [.-_]?(a|b|rc|alpha|beta|c|pre|preview)[.-_]?N?
        let owned = trim_sep(&rest);
        for (word, kind) in [
            ("alpha", 0u8),
            ("beta", 1),
            ("preview", 2),
            ("pre", 2),
            ("rc", 2),
            ("a", 0),
            ("b", 1),
            ("c", 2),
        ] {
            if let Some(r) = owned.strip_prefix(word) {
                let (n, r) = take_num(r);
                pre = Some((kind, n));
                rest = r;
                break;
            }
        }
        let owned = trim_sep(&rest);
        for word in ["post", "rev", "r"] {
            if let Some(r) = owned.strip_prefix(word) {
                let (n, r) = take_num(r);
                post = Some(n);
                rest = r;
                break;
            }
        }
        let owned = trim_sep(&rest);
        if let Some(r) = owned.strip_prefix("dev") {
            let (n, r) = take_num(r);
            dev = Some(n);
            rest = r;
        }
        if !rest.is_empty() {
            return None;
        }
        Some(Pep440 {
            text: original.to_string(),
            epoch,
            release,
            pre,
            post,
            dev,
            local,
        })
    }

    /// The text it was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn release_cmp(&self, other: &Self) -> Ordering {
        let n = self.release.len().max(other.release.len());
        for i in 0..n {
            let a = self.release.get(i).copied().unwrap_or(0);
            let b = other.release.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        Ordering::Equal
    }

    /// Sort key for the pre-release part: a dev-only release sorts before any pre-release.
    fn pre_key(&self) -> (i8, u64) {
        match (self.pre, self.post, self.dev) {
            (None, None, Some(_)) => (-1, 0),
            (None, _, _) => (3, 0),
            (Some((k, n)), _, _) => (k as i8, n),
        }
    }
}

impl PartialEq for Pep440 {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pep440 {}

impl PartialOrd for Pep440 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pep440 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| self.release_cmp(other))
            .then_with(|| self.pre_key().cmp(&other.pre_key()))
            // No post sorts before any post.
            .then_with(|| {
                self.post
                    .map_or(-1, |p| p as i128)
                    .cmp(&other.post.map_or(-1, |p| p as i128))
            })
            // No dev sorts after any dev.
            .then_with(|| {
                self.dev
                    .map_or(i128::MAX, |d| d as i128)
                    .cmp(&other.dev.map_or(i128::MAX, |d| d as i128))
            })
            .then_with(|| self.local.cmp(&other.local))
    }
}

impl fmt::Display for Pep440 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The highest of `versions` by PEP 440. Texts that are not PEP 440 rank below every valid
/// version (among themselves by text), so one bad row cannot hide the real current version.
pub fn max_version<'a>(versions: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    versions
        .into_iter()
        .max_by(|a, b| match (Pep440::parse(a), Pep440::parse(b)) {
            (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
            (Some(_), None) => Ordering::Greater,
            (None, Some(_)) => Ordering::Less,
            (None, None) => a.cmp(b),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Pep440 {
        Pep440::parse(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn dev_of_post_sorts_between_release_and_next_release() {
        let order = [
            "0.4.0.dev1",
            "0.4.0a1",
            "0.4.0b2",
            "0.4.0rc1",
            "0.4.0",
            "0.4.0.post1.dev3",
            "0.4.0.post1",
            "0.4.1",
            "1.0.0",
            "1!0.1",
        ];
        for w in order.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn max_version_prefers_pep440_over_string_order() {
        assert_eq!(max_version(["0.9.0", "0.10.0", "0.1.0"]), Some("0.10.0"));
        assert_eq!(max_version(["1.0.0", "0.1.0"]), Some("1.0.0"));
        assert_eq!(max_version(["garbage", "0.1.0"]), Some("0.1.0"));
        assert_eq!(max_version(Vec::<&str>::new()), None);
    }

    #[test]
    fn non_versions_are_rejected() {
        for bad in ["", "abc", "1.0.0x", "1..0", "+local"] {
            assert!(Pep440::parse(bad).is_none(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,20}") {
            let _ = Pep440::parse(&s);
        }

        #[test]
        fn release_triples_order_like_tuples(a in (0u64..20, 0u64..20, 0u64..20), b in (0u64..20, 0u64..20, 0u64..20)) {
            let va = v(&format!("{}.{}.{}", a.0, a.1, a.2));
            let vb = v(&format!("{}.{}.{}", b.0, b.1, b.2));
            prop_assert_eq!(va.cmp(&vb), a.cmp(&b));
        }
    }
}
