//! Instagram shortcodes: the `/p/<shortcode>/` of a post's URL is its canonical media id written in base 64
//! (alphabet `A-Za-z0-9-_`, most significant digit first). The web endpoint gives both; the Graph API gives
//! only its own id and the permalink, so the shortcode is how a Graph post finds its web row.

/// The base-64 digits in order of value.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Eleven digits hold 66 bits: enough for any positive i64, and the longest shortcode a media id gives.
const MAX_LEN: usize = 11;

/// Why a shortcode is not a media id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShortcodeError {
    #[error("empty shortcode")]
    Empty,
    #[error("shortcode `{0}` is longer than 11 characters (a private or non-post code, not a media id)")]
    TooLong(String),
    #[error("shortcode `{code}` has `{bad}`, which is not in the alphabet A-Z a-z 0-9 - _")]
    BadCharacter { code: String, bad: char },
    #[error("shortcode `{0}` encodes a number beyond a 64-bit media id")]
    Overflow(String),
    #[error("shortcode `{0}` encodes 0, which is no media id")]
    Zero(String),
    #[error("a shortcode of {0} bytes is longer than its unique index can hold ({max} bytes)", max = crate::limits::INDEXED_TEXT_MAX_BYTES)]
    Unindexable(usize),
}

/// The media id `code` encodes.
pub fn decode(code: &str) -> Result<i64, ShortcodeError> {
    if code.is_empty() {
        return Err(ShortcodeError::Empty);
    }
    let mut id: i64 = 0;
    for c in code.chars() {
        let digit = ALPHABET
            .iter()
            .position(|&a| char::from(a) == c)
            .ok_or_else(|| ShortcodeError::BadCharacter { code: code.to_owned(), bad: c })?;
        // Checked first for the alphabet, so that a bad character is named even in an overlong code.
        if code.len() > MAX_LEN {
            continue;
        }
        id = id
            .checked_mul(64)
            .and_then(|id| id.checked_add(digit as i64))
            .ok_or_else(|| ShortcodeError::Overflow(code.to_owned()))?;
    }
    if code.len() > MAX_LEN {
        return Err(ShortcodeError::TooLong(code.to_owned()));
    }
    if id == 0 {
        return Err(ShortcodeError::Zero(code.to_owned()));
    }
    Ok(id)
}

/// The shortcode of media id `id` (positive), the inverse of [`decode`].
pub fn encode(id: i64) -> String {
    let mut digits = Vec::new();
    let mut rest = id.max(0) as u64;
    loop {
        digits.push(ALPHABET[(rest % 64) as usize]);
        rest /= 64;
        if rest == 0 {
            break;
        }
    }
    digits.reverse();
    String::from_utf8(digits).expect("the alphabet is ASCII")
}

/// The shortcode in a post's permalink: the path segment after `p`, `reel`, `reels` or `tv`
/// (`https://www.instagram.com/p/CxYz123AbC_/`, `.../reel/<code>/?igsh=...`).
pub fn from_permalink(permalink: &str) -> Option<&str> {
    let after_scheme = permalink.split_once("://").map_or(permalink, |(_, rest)| rest);
    let path = after_scheme.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    segments
        .windows(2)
        .find(|pair| matches!(pair[0], "p" | "reel" | "reels" | "tv") && !pair[1].is_empty())
        .map(|pair| pair[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_big_endian_base_64() {
        assert_eq!(decode("B"), Ok(1));
        assert_eq!(decode("_"), Ok(63));
        assert_eq!(decode("BA"), Ok(64));
        assert_eq!(decode("AAB"), Ok(1), "leading A's are zeros");
        assert_eq!(decode("-_"), Ok(62 * 64 + 63));
        assert_eq!(decode("H__________"), Ok(i64::MAX));
        // By hand: B=1, Q=16, 0=52, i=34, k=36, b=27, S=18, h=33, -=62, F=5, e=30.
        let digits = [1_i64, 16, 52, 34, 36, 27, 18, 33, 62, 5, 30];
        assert_eq!(decode("BQ0ikbSh-Fe"), Ok(digits.iter().fold(0, |n, d| n * 64 + d)));
        assert_eq!(decode("BQ0ikbSh-Fe"), Ok(1455940616331977054));
    }

    #[test]
    fn encoding_is_the_inverse() {
        for id in [1, 63, 64, 4095, 1455940616331977054, 3195531937028616383, i64::MAX] {
            assert_eq!(decode(&encode(id)), Ok(id), "{id}");
        }
        for code in ["B", "BQ0ikbSh-Fe", "CxYz123AbC_", "C9abcDEFghi"] {
            assert_eq!(encode(decode(code).unwrap()), code);
        }
    }

    #[test]
    fn bad_codes_say_why() {
        assert_eq!(decode(""), Err(ShortcodeError::Empty));
        assert_eq!(decode("AAAA"), Err(ShortcodeError::Zero("AAAA".into())));
        assert_eq!(decode("IAAAAAAAAAA"), Err(ShortcodeError::Overflow("IAAAAAAAAAA".into())));
        assert_eq!(decode("BAAAAAAAAAAA"), Err(ShortcodeError::TooLong("BAAAAAAAAAAA".into())));
        assert_eq!(decode("Cx+z"), Err(ShortcodeError::BadCharacter { code: "Cx+z".into(), bad: '+' }));
    }

    #[test]
    fn permalinks_of_posts_reels_and_tv() {
        assert_eq!(from_permalink("https://www.instagram.com/p/CxYz123AbC_/"), Some("CxYz123AbC_"));
        assert_eq!(from_permalink("https://www.instagram.com/reel/C9abcDEFghi/?igsh=x"), Some("C9abcDEFghi"));
        assert_eq!(from_permalink("https://www.instagram.com/tv/B/"), Some("B"));
        assert_eq!(from_permalink("https://www.instagram.com/bluebottle/p/CxYz123AbC_"), Some("CxYz123AbC_"));
        assert_eq!(from_permalink("https://www.instagram.com/bluebottle/"), None);
        assert_eq!(from_permalink("https://www.instagram.com/p/"), None);
        assert_eq!(from_permalink(""), None);
    }
}
