//! Hashtags in a caption. Instagram links `#` followed by letters, digits and underscores (any script), up to
//! the first other character; we read them the same way, with two choices of ours:
//! - a `#` inside a word is not a tag (`a#b`, `C#`), as Instagram does not link it either;
//! - a tag of digits only (`#1`) is not a tag: Instagram does not link those.
//!
//! Names are lower-cased (Instagram's tags are case-insensitive) and each is listed once.

/// The hashtags of `caption`, lower-cased, each once, in order of first use.
pub fn in_caption(caption: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    let mut previous: Option<char> = None;
    let mut chars = caption.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let starts_tag = c == '#' && !previous.is_some_and(is_tag_char);
        previous = Some(c);
        if !starts_tag {
            continue;
        }
        let mut end = start + 1;
        while let Some(&(i, next)) = chars.peek().filter(|(_, next)| is_tag_char(*next)) {
            end = i + next.len_utf8();
            previous = Some(next);
            chars.next();
        }
        let name = &caption[start + 1..end];
        if name.is_empty() || name.chars().all(|c| c.is_numeric()) {
            continue;
        }
        let name = name.to_lowercase();
        if !tags.contains(&name) {
            tags.push(name);
        }
    }
    tags
}

/// A hashtag name as a header gives it (the name searched, maybe with its `#`), lower-cased; `None` if it is
/// not one tag.
pub fn normalize(name: &str) -> Option<String> {
    let name = name.trim();
    let name = name.strip_prefix('#').unwrap_or(name);
    (!name.is_empty() && name.chars().all(is_tag_char)).then(|| name.to_lowercase())
}

fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_lower_cased_and_listed_once() {
        assert_eq!(in_caption("Sunday #Coffee at #BlueBottle, #coffee again"), ["coffee", "bluebottle"]);
        assert_eq!(in_caption("#Café☕ #東京 #ñandú_2024!"), ["café", "東京", "ñandú_2024"]);
        assert_eq!(in_caption("line\n#one#two"), ["one"], "a # right after a tag is inside a word");
    }

    #[test]
    fn what_is_not_a_tag() {
        assert!(in_caption("a#b C# # #! ## #1 #2024").is_empty());
        assert_eq!(in_caption("##double"), ["double"]);
        assert_eq!(in_caption(""), Vec::<String>::new());
    }

    #[test]
    fn header_names() {
        assert_eq!(normalize("Coffee").as_deref(), Some("coffee"));
        assert_eq!(normalize("#Coffee").as_deref(), Some("coffee"));
        assert_eq!(normalize(""), None);
        assert_eq!(normalize("two words"), None);
        assert_eq!(normalize("a\0b"), None);
    }
}
