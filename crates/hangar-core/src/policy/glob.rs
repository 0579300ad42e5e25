//! Glob matching with `*` and `?` for tool policies.

/// Whether `text` matches `pattern` as a whole: `*` matches any run of characters (also
/// none), `?` exactly one character, anything else itself (case-sensitive, no escapes).
///
/// Runs in O(pattern × text) at worst, without allocating: a mismatch after a `*` resumes
/// from that `*` one character further on, and an earlier `*` is never revisited (a later
/// `*` can absorb anything the earlier one would have).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0, 0);
    // After the last `*` seen: where the pattern resumes, and the text position it is tried at.
    let mut resume: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                pi += 1;
                resume = Some((pi, ti));
                continue;
            }
            Some(b'?') => {
                pi += 1;
                ti += char_len(t[ti]);
                continue;
            }
            Some(&c) if c == t[ti] => {
                pi += 1;
                ti += 1;
                continue;
            }
            _ => {}
        }
        // Mismatch: let the last `*` absorb one more character, or fail.
        let Some((star_pi, star_ti)) = resume else {
            return false;
        };
        let next = star_ti + char_len(t[star_ti]);
        resume = Some((star_pi, next));
        pi = star_pi;
        ti = next;
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// Length of the UTF-8 character starting with byte `first`. `ti` only ever lands on
/// character boundaries: literal bytes match whole characters (UTF-8 is prefix-free) and
/// wildcards step over whole characters.
fn char_len(first: u8) -> usize {
    match first {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::glob_match;

    #[test]
    fn literals_match_only_themselves() {
        assert!(glob_match("fs", "fs"));
        assert!(!glob_match("fs", "fs2"));
        assert!(!glob_match("fs", "f"));
        assert!(!glob_match("fs", "FS"));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "a"));
    }

    #[test]
    fn star_matches_any_run() {
        for text in ["", "a", "write_file", "ünïcödé"] {
            assert!(glob_match("*", text), "{text}");
            assert!(glob_match("**", text), "{text}");
        }
        assert!(glob_match("write_*", "write_"));
        assert!(glob_match("write_*", "write_file"));
        assert!(!glob_match("write_*", "write"));
        assert!(!glob_match("write_*", "rewrite_file"));
        assert!(glob_match("*_file", "write_file"));
        assert!(glob_match("*file*", "profile_files"));
        assert!(glob_match("a*b*c", "a_b_b_c"));
        assert!(!glob_match("a*b*c", "a_c_b"));
        assert!(glob_match("fs__write_*", "fs__write_text"));
    }

    #[test]
    fn question_mark_matches_one_character() {
        assert!(glob_match("r??d", "read"));
        assert!(!glob_match("r??d", "rad"));
        assert!(!glob_match("r?", "r"));
        assert!(glob_match("?", "é"));
        assert!(glob_match("?x", "€x"));
        assert!(glob_match("??", "😀é"));
        assert!(!glob_match("??", "😀"));
        assert!(glob_match("*?", "😀"));
        assert!(!glob_match("?*?", "😀"));
    }

    #[test]
    fn star_backtracks() {
        assert!(glob_match("*ab", "aab"));
        assert!(glob_match("*aab", "aaab"));
        assert!(glob_match("a*ab*", "aXabYab"));
        assert!(glob_match("*é*", "caféine"));
        assert!(!glob_match("*é", "caféine"));
    }

    /// Quadratic at worst: this takes microseconds, an exponential matcher would not end.
    #[test]
    fn pathological_patterns_stay_fast() {
        let text = "a".repeat(2_000);
        let pattern = format!("{}b", "a*".repeat(50));
        assert!(!glob_match(&pattern, &text));
        assert!(glob_match(&format!("{}a", "*a".repeat(50)), &text));
    }

    /// The obvious (exponential) definition, over characters.
    fn reference(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && reference(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
        }
    }

    proptest! {
        /// Agrees with the definition on small alphabets, ASCII and not.
        #[test]
        fn agrees_with_reference(pattern in "[ab*?é]{0,8}", text in "[abé€]{0,10}") {
            let p: Vec<char> = pattern.chars().collect();
            let t: Vec<char> = text.chars().collect();
            prop_assert_eq!(glob_match(&pattern, &text), reference(&p, &t));
        }

        /// A text matches itself (when it has no wildcards) and every pattern made from it by
        /// replacing characters with `?` or runs with `*`.
        #[test]
        fn generalizations_match(text in "[a-z_é]{0,12}", mask in prop::collection::vec(0u8..4, 12)) {
            prop_assert!(glob_match(&text, &text));
            let pattern: String = text
                .chars()
                .zip(mask.iter().chain(std::iter::repeat(&0)))
                .map(|(c, m)| match m {
                    1 => "?".to_owned(),
                    2 => "*".to_owned(),
                    3 => format!("*{c}"),
                    _ => c.to_string(),
                })
                .collect();
            prop_assert!(glob_match(&pattern, &text), "{} !~ {}", pattern, text);
        }
    }
}
