//! Sanitized HTML (what Mastodon sends as a status's `content`) to the plain text a reader sees: tags
//! stripped, line and paragraph breaks kept, character references decoded, whitespace collapsed as a browser
//! would. Not a general HTML parser: enough for the small, sanitized subset that fediverse servers emit, and
//! never failing on anything else (a stray `<` or `&` is text).

/// Elements that stand apart from their neighbours by a blank line.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "blockquote",
    "pre",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "section",
    "article",
    "header",
    "footer",
    "table",
    "figure",
    "hr",
];

/// Elements whose content is not text for a reader (Mastodon's sanitizer removes them; other servers may not).
const HIDDEN: &[&str] = &["script", "style", "template", "noscript", "iframe", "svg", "math", "head", "title"];

/// The text of `html`. A paragraph break (`</p><p>`) becomes a blank line, `<br>` a line break: Mastodon
/// turns what its author typed into exactly that, so this recovers the text as written.
pub fn to_text(html: &str) -> String {
    let mut text = Text::default();
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            text.push_text(rest);
            break;
        };
        text.push_text(&rest[..lt]);
        rest = &rest[lt..];
        match Tag::parse(rest) {
            Markup::Tag(tag, after) => {
                rest = after;
                if !tag.closing && HIDDEN.contains(&tag.name.as_str()) {
                    rest = skip_past_closing(rest, &tag.name);
                } else {
                    text.apply(&tag);
                }
            }
            Markup::Skip(after) => rest = after,
            Markup::Text => {
                text.push_text("<");
                rest = &rest[1..];
            }
        }
    }
    text.finish()
}

/// The output being built, with the break that the next text must be preceded by.
#[derive(Default)]
struct Text {
    out: String,
    /// Newlines owed before the next text (1 for a line, 2 for a paragraph); dropped at the end.
    pending_newlines: usize,
    /// Inside `<pre>`: whitespace is kept as written.
    pre_depth: usize,
}

impl Text {
    fn apply(&mut self, tag: &Tag) {
        let name = tag.name.as_str();
        if name == "br" {
            self.newline();
        } else if name == "li" || name == "tr" || name == "dt" || name == "dd" {
            self.owe(1);
        } else if BLOCKS.contains(&name) {
            self.owe(2);
            if name == "pre" {
                self.pre_depth = if tag.closing { self.pre_depth.saturating_sub(1) } else { self.pre_depth + 1 };
            }
        }
    }

    fn owe(&mut self, newlines: usize) {
        self.pending_newlines = self.pending_newlines.max(newlines);
    }

    /// A `<br>`: a line break now, even at the start or after another.
    fn newline(&mut self) {
        self.pay_breaks();
        self.trim_trailing_spaces();
        self.out.push('\n');
    }

    fn push_text(&mut self, raw: &str) {
        if raw.is_empty() {
            return;
        }
        let decoded = decode_references(raw);
        let mut text: &str = &decoded;
        let collapsed;
        if self.pre_depth == 0 {
            collapsed = collapse_whitespace(text);
            text = &collapsed;
            // Whitespace at the start of a line is not seen (nor is whitespace between blocks), and a space
            // after a space is the same space.
            if self.pending_newlines > 0 || self.out.is_empty() || self.out.ends_with(['\n', ' ']) {
                text = text.trim_start_matches(' ');
            }
        }
        if text.is_empty() {
            return;
        }
        self.pay_breaks();
        self.out.push_str(text);
    }

    /// Writes the newlines owed, counting those already written (a `<br>` before `</p>`).
    fn pay_breaks(&mut self) {
        if self.pending_newlines == 0 {
            return;
        }
        if !self.out.is_empty() {
            self.trim_trailing_spaces();
            let present = self.out.len() - self.out.trim_end_matches('\n').len();
            for _ in present..self.pending_newlines {
                self.out.push('\n');
            }
        }
        self.pending_newlines = 0;
    }

    fn trim_trailing_spaces(&mut self) {
        if self.pre_depth == 0 {
            self.out.truncate(self.out.trim_end_matches(' ').len());
        }
    }

    fn finish(mut self) -> String {
        self.trim_trailing_spaces();
        self.out.truncate(self.out.trim_end_matches('\n').len());
        self.out
    }
}

/// Runs of ASCII whitespace as one space, as HTML renders them outside `<pre>`. A non-breaking space
/// (`&nbsp;`) is not whitespace to HTML and stays.
fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.chars() {
        if matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c') {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

struct Tag {
    /// Lower-cased.
    name: String,
    closing: bool,
}

enum Markup<'a> {
    /// A start or end tag, and the input after it.
    Tag(Tag, &'a str),
    /// A comment, doctype or processing instruction: nothing to show.
    Skip(&'a str),
    /// A `<` that starts no markup (`a < b`, `<3`): it is text.
    Text,
}

impl Tag {
    /// Reads the markup at the start of `input`, which starts with `<`.
    fn parse(input: &str) -> Markup<'_> {
        let after_lt = &input[1..];
        if let Some(comment) = after_lt.strip_prefix("!--") {
            let end = comment.find("-->").map_or(comment.len(), |i| i + 3);
            return Markup::Skip(&comment[end..]);
        }
        if after_lt.starts_with(['!', '?']) {
            return Markup::Skip(after_tag_end(after_lt));
        }
        let (closing, name_start) = match after_lt.strip_prefix('/') {
            Some(rest) => (true, rest),
            None => (false, after_lt),
        };
        if !name_start.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Markup::Text;
        }
        let name_len = name_start.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).unwrap_or(name_start.len());
        let name = name_start[..name_len].to_ascii_lowercase();
        Markup::Tag(Tag { name, closing }, after_tag_end(&name_start[name_len..]))
    }
}

/// The input after the `>` that ends a tag, skipping `>` inside quoted attribute values; an unterminated tag
/// runs to the end (a browser drops it too).
fn after_tag_end(input: &str) -> &str {
    let mut quote = None;
    for (i, c) in input.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '>') => return &input[i + 1..],
            _ => {}
        }
    }
    ""
}

/// The input after `</name>`, or nothing if the element is never closed.
fn skip_past_closing<'a>(input: &'a str, name: &str) -> &'a str {
    let closing = format!("</{name}");
    let lower = input.to_ascii_lowercase();
    match lower.find(&closing) {
        Some(start) => after_tag_end(&input[start + closing.len()..]),
        None => "",
    }
}

/// Every character reference decoded as HTML5 does in text (the WHATWG table of 2,231 names, numeric ones,
/// the legacy names a browser reads without their `;`); one that names nothing stays as written. A numeric
/// reference to no character (NUL, a surrogate, past U+10FFFF) becomes U+FFFD: Postgres could not store a
/// NUL anyway.
fn decode_references(text: &str) -> std::borrow::Cow<'_, str> {
    htmlize::unescape(text)
}

#[cfg(test)]
mod tests {
    use super::to_text;

    #[test]
    fn paragraphs_become_blank_lines_and_br_a_line_break() {
        assert_eq!(to_text("<p>one</p><p>two<br>three<br/>four<br />five</p>"), "one\n\ntwo\nthree\nfour\nfive");
        assert_eq!(to_text("<p>a<br /></p><p>b</p>"), "a\n\nb");
        assert_eq!(to_text("<p>a<br><br>b</p>"), "a\n\nb");
        assert_eq!(to_text("<p>a</p>\n<p>b</p>\n"), "a\n\nb", "source newlines between blocks are not text");
        assert_eq!(to_text("<P>Up</P><P>per</P>"), "Up\n\nper");
    }

    #[test]
    fn links_mentions_and_hashtags_read_as_shown_with_full_urls() {
        let html = concat!(
            r#"<p><span class="h-card" translate="no"><a href="https://mastodon.social/@Gargron" class="u-url mention">@<span>Gargron</span></a></span> "#,
            r#"see <a href="https://example.com/a?b=1&amp;c=2" target="_blank" rel="nofollow noopener" translate="no"><span class="invisible">https://</span><span class="ellipsis">example.com/a?b=1&amp;c</span><span class="invisible">=2</span></a> "#,
            r#"<a href="https://mastodon.social/tags/Rust" class="mention hashtag" rel="tag">#<span>Rust</span></a></p>"#
        );
        assert_eq!(to_text(html), "@Gargron see https://example.com/a?b=1&c=2 #Rust");
    }

    #[test]
    fn character_references_are_decoded_once() {
        assert_eq!(to_text("&lt;3 &amp; &quot;hi&quot; &#39;x&#39; &apos;"), "<3 & \"hi\" 'x' '");
        assert_eq!(to_text("&amp;lt; is how you write &lt;"), "&lt; is how you write <");
        assert_eq!(to_text("&#x1F980; &#129408; &#X41;"), "🦀 🦀 A");
        assert_eq!(to_text("a&nbsp;b&hellip;"), "a\u{a0}b…");
        assert_eq!(to_text("&#0; &#xD800; &#1114112;"), "\u{fffd} \u{fffd} \u{fffd}");
    }

    #[test]
    fn every_html5_named_reference_is_decoded() {
        assert_eq!(to_text("<p>Caf&eacute; cr&egrave;me &Agrave; la carte</p>"), "Café crème À la carte");
        assert_eq!(
            to_text("&hearts; &rarr; &alpha;&beta; &frac12; &ccedil;&atilde;o &szlig; &oelig;"),
            "♥ → αβ ½ ção ß œ"
        );
        assert_eq!(to_text("&NotNestedGreaterGreater; &fjlig; &DoubleLongLeftRightArrow;"), "⪢̸ fj ⟺");
        // Legacy names a browser also reads without their `;`.
        assert_eq!(to_text("caf&eacute &copy 2024"), "café © 2024");
    }

    #[test]
    fn what_is_not_markup_or_not_a_reference_stays_as_written() {
        assert_eq!(to_text("AT&T & co &unknown; &#; &#xZZ;"), "AT&T & co &unknown; &#; &#xZZ;");
        assert_eq!(to_text("a < b, 1 <3 you, <> <"), "a < b, 1 <3 you, <> <");
        assert_eq!(to_text("x <!-- hidden --> y <!DOCTYPE html>z"), "x y z");
        assert_eq!(to_text("unterminated <a href=\"x"), "unterminated");
        assert_eq!(to_text(""), "");
    }

    #[test]
    fn quoted_angle_brackets_do_not_end_a_tag() {
        assert_eq!(to_text(r#"<a title="a > b" href='c>d'>link</a>"#), "link");
    }

    #[test]
    fn scripts_and_styles_are_not_text() {
        assert_eq!(to_text("a<script>alert('<p>x</p>')</script>b<STYLE>p{}</Style>c<style>never closed"), "abc");
    }

    #[test]
    fn whitespace_collapses_except_in_pre() {
        assert_eq!(to_text("<p>  a \n\t b  </p><p> c</p>"), "a b\n\nc");
        assert_eq!(to_text("<p>x</p><pre><code>fn main() {\n    1\n}</code></pre>"), "x\n\nfn main() {\n    1\n}");
    }

    #[test]
    fn lists_and_quotes_keep_their_lines() {
        assert_eq!(
            to_text("<p>todo:</p><ul><li>one</li><li>two</li></ul><blockquote><p>q</p></blockquote>"),
            "todo:\n\none\ntwo\n\nq"
        );
    }

    #[test]
    fn plain_text_passes_unchanged() {
        assert_eq!(to_text("just text, ünïcode 日本 🦀"), "just text, ünïcode 日本 🦀");
    }
}
