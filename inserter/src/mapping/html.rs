//! Sanitized HTML (what Mastodon sends as a status's `content`) to the plain text a reader sees: tags
//! stripped, line and paragraph breaks kept, character references decoded, whitespace collapsed as a browser
//! would. Not a general HTML parser: enough for the small, sanitized subset that fediverse servers emit, and
//! never failing on anything else (a stray `<` or `&` is text).
//!
//! Linear in its input, whatever its shape: every batch decodes its statuses (and isolating a poison record
//! decodes them again), so a status built to make this slow would stall the topic. Hence no step looks back
//! over what was written nor ahead past what it consumes: `benches/html.rs` times the hostile shapes.

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

/// Elements that start a line of their own.
const LINES: &[&str] = &["li", "tr", "dt", "dd"];

/// Elements whose content is not text for a reader (Mastodon's sanitizer removes them; other servers may not).
const HIDDEN: &[&str] = &["script", "style", "template", "noscript", "iframe", "svg", "math", "head", "title"];

/// The text of `html`. A paragraph break (`</p><p>`) becomes a blank line, `<br>` a line break: Mastodon
/// turns what its author typed into exactly that, so this recovers the text as written.
pub fn to_text(html: &str) -> String {
    let mut text = Text::default();
    // The text not yet written starts at `text_start`; a `<` that is text (`a < b`) stays part of it, so
    // that a run of them is decoded and collapsed once rather than one `<` at a time.
    let mut text_start = 0;
    let mut search_from = 0;
    while let Some(lt) = html[search_from..].find('<').map(|i| search_from + i) {
        let (tag, rest) = match Tag::parse(&html[lt..]) {
            Markup::Tag(tag, after) => (Some(tag), after),
            Markup::Skip(after) => (None, after),
            Markup::Text => {
                search_from = lt + 1;
                continue;
            }
        };
        text.push_text(&html[text_start..lt]);
        let rest = match tag {
            Some(tag) if !tag.closing => match HIDDEN.iter().find(|hidden| tag.name.eq_ignore_ascii_case(hidden)) {
                Some(hidden) => skip_past_closing(rest, hidden),
                None => {
                    text.apply(&tag);
                    rest
                }
            },
            Some(tag) => {
                text.apply(&tag);
                rest
            }
            None => rest,
        };
        text_start = html.len() - rest.len();
        search_from = text_start;
    }
    text.push_text(&html[text_start..]);
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
    /// How `out` ends: `trailing_spaces` spaces after `newlines_before_spaces` newlines, kept as it is
    /// written. A break needs both and counting them on `out` would rescan it: `<p><br>` repeated writes
    /// nothing but newlines.
    trailing_spaces: usize,
    newlines_before_spaces: usize,
}

impl Text {
    fn apply(&mut self, tag: &Tag) {
        let is = |name: &str| tag.name.eq_ignore_ascii_case(name);
        if is("br") {
            self.newline();
        } else if LINES.iter().any(|name| is(name)) {
            self.owe(1);
        } else if BLOCKS.iter().any(|name| is(name)) {
            self.owe(2);
            if is("pre") {
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
        self.write("\n");
    }

    fn push_text(&mut self, raw: &str) {
        if raw.is_empty() {
            return;
        }
        let decoded = decode_references(raw);
        if self.pre_depth > 0 {
            if !decoded.is_empty() {
                self.pay_breaks();
                self.write(&decoded);
            }
            return;
        }
        // Whitespace at the start of a line is not seen (nor is whitespace between blocks), and a space
        // after a space is the same space.
        let mut text: &str = &decoded;
        if self.pending_newlines > 0 || self.out.is_empty() || self.out.ends_with(['\n', ' ']) {
            text = text.trim_start_matches(is_html_space);
        }
        if text.is_empty() {
            return;
        }
        self.pay_breaks();
        let start = self.out.len();
        while let Some(space) = text.find(is_html_space) {
            self.out.push_str(&text[..space]);
            self.out.push(' ');
            text = text[space..].trim_start_matches(is_html_space);
        }
        self.out.push_str(text);
        self.written_from(start);
    }

    /// Writes the newlines owed, counting those already written (a `<br>` before `</p>`).
    fn pay_breaks(&mut self) {
        if self.pending_newlines == 0 {
            return;
        }
        if !self.out.is_empty() {
            self.trim_trailing_spaces();
            let present = if self.trailing_spaces == 0 { self.newlines_before_spaces } else { 0 };
            for _ in present..self.pending_newlines {
                self.write("\n");
            }
        }
        self.pending_newlines = 0;
    }

    fn trim_trailing_spaces(&mut self) {
        if self.pre_depth == 0 {
            self.out.truncate(self.out.len() - self.trailing_spaces);
            self.trailing_spaces = 0;
        }
    }

    fn write(&mut self, text: &str) {
        let start = self.out.len();
        self.out.push_str(text);
        self.written_from(start);
    }

    /// Brings the counts of how `out` ends up to date with what was appended from byte `start` on, looking
    /// no further back into it than the whitespace that ends it.
    fn written_from(&mut self, start: usize) {
        let added = &self.out.as_bytes()[start..];
        let spaces = added.iter().rev().take_while(|&&b| b == b' ').count();
        if spaces == added.len() {
            self.trailing_spaces += spaces;
            return;
        }
        let before_spaces = &added[..added.len() - spaces];
        let newlines = before_spaces.iter().rev().take_while(|&&b| b == b'\n').count();
        // Only newlines and spaces added: they continue newlines that ended `out`, if no space came between.
        self.newlines_before_spaces = if newlines == before_spaces.len() && self.trailing_spaces == 0 {
            self.newlines_before_spaces + newlines
        } else {
            newlines
        };
        self.trailing_spaces = spaces;
    }

    fn finish(mut self) -> String {
        self.trim_trailing_spaces();
        if self.trailing_spaces == 0 {
            self.out.truncate(self.out.len() - self.newlines_before_spaces);
        }
        self.out
    }
}

/// ASCII whitespace, which HTML collapses outside `<pre>`. A non-breaking space (`&nbsp;`) is not whitespace
/// to HTML and stays.
fn is_html_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

struct Tag<'a> {
    /// As written: compared without regard to case, never lower-cased into a copy.
    name: &'a str,
    closing: bool,
}

enum Markup<'a> {
    /// A start or end tag, and the input after it.
    Tag(Tag<'a>, &'a str),
    /// A comment, doctype or processing instruction: nothing to show.
    Skip(&'a str),
    /// A `<` that starts no markup (`a < b`, `<3`): it is text.
    Text,
}

impl Tag<'_> {
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
        let (name, after_name) = name_start.split_at(name_len);
        Markup::Tag(Tag { name, closing }, after_tag_end(after_name))
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

/// The input after `</name>` in any case (`name` is lower case), or nothing if the element is never closed.
/// Compares in place: lower-casing the rest of the input for each hidden element made `<svg></svg>`
/// repeated quadratic.
fn skip_past_closing<'a>(input: &'a str, name: &str) -> &'a str {
    let mut from = 0;
    while let Some(at) = input[from..].find("</").map(|i| from + i) {
        let name_end = at + 2 + name.len();
        if input.as_bytes().get(at + 2..name_end).is_some_and(|found| found.eq_ignore_ascii_case(name.as_bytes())) {
            return after_tag_end(&input[name_end..]);
        }
        from = at + 2;
    }
    ""
}

/// Every character reference decoded as HTML5 does in text (the WHATWG table of 2,231 names, numeric ones,
/// the legacy names a browser reads without their `;`); one that names nothing stays as written. A numeric
/// reference to no character (NUL, a surrogate, past U+10FFFF) becomes U+FFFD: Postgres could not store a
/// NUL anyway. Linear too: `htmlize` finds each `&` once and reads past it no further than the longest name
/// or the digits of a number, which no other reference shares.
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

    // The shapes that were quadratic or could be, each small: their exact output, as before they were made
    // linear. `benches/html.rs` times them large.

    #[test]
    fn paragraphs_of_line_breaks() {
        assert_eq!(to_text("<p>a<br><p><br>b<p><br><br>c"), "a\n\n\nb\n\n\n\nc");
        assert_eq!(to_text(&"<p><br>".repeat(3)), "");
        assert_eq!(to_text(&format!("{}x", "<p><br>".repeat(3))), "\n\n\n\nx");
    }

    #[test]
    fn hidden_elements_close_in_any_case_and_only_by_their_own_name() {
        assert_eq!(to_text("a<svg><p>b</p></svg>c<SVG x='</svg>'>d</Svg >e<svg/>f</svgx>g"), "aceg");
        assert_eq!(to_text("a<math></mat></m></math>b<title>t</style></TITLE>c"), "abc");
        assert_eq!(to_text(&format!("{}x", "<svg></svg>".repeat(100))), "x");
    }

    #[test]
    fn an_unclosed_hidden_element_hides_the_rest() {
        assert_eq!(to_text("a<script>b<p>c</p></scrip"), "a");
        assert_eq!(to_text("a <STYLE>"), "a");
        assert_eq!(to_text("a<svg>b</"), "a");
    }

    #[test]
    fn deep_nesting() {
        assert_eq!(to_text(&format!("{}a  b{}", "<span>".repeat(1000), "</span>".repeat(1000))), "a b");
        assert_eq!(to_text(&format!("{}x{}y", "<div>".repeat(50), "</div>".repeat(50))), "x\n\ny");
    }

    #[test]
    fn runs_of_references_and_references_that_never_end() {
        assert_eq!(to_text(&"&amp;".repeat(100)), "&".repeat(100));
        assert_eq!(to_text("&amp;amp; &amp;lt;"), "&amp; &lt;");
        let unterminated = format!("&{}", "x".repeat(1000));
        assert_eq!(to_text(&unterminated), unterminated);
        assert_eq!(to_text(&format!("&#{};", "9".repeat(100))), "\u{fffd}");
        assert_eq!(to_text("&#x110000; &#1234567890123 &#xFFFFFFFFF;"), "\u{fffd} \u{fffd} \u{fffd}");
        assert_eq!(to_text("&#32;&#x20;a&#10;&#9;b&#13;"), "a b", "decoded whitespace collapses like written");
        assert_eq!(to_text("&&&;&#&#x&;"), "&&&;&#&#x&;");
    }

    #[test]
    fn angle_brackets_that_open_no_tag() {
        assert_eq!(to_text(&"<".repeat(5)), "<<<<<");
        assert_eq!(to_text("1 <3 2 </3 <<b>x</b>< /p>"), "1 <3 2 </3 <x< /p>");
        assert_eq!(to_text("a <b c d"), "a", "an unterminated tag runs to the end");
        assert_eq!(to_text("a<!-- b <p>"), "a");
        assert_eq!(to_text("a<!b<p>c"), "ac");
    }

    #[test]
    fn long_attribute_lists() {
        assert_eq!(to_text(&format!("<a{}>t</a>", r#" x="1>2" y='<p>' z=3"#.repeat(100))), "t");
        assert_eq!(to_text("a<a title=\"x>y z"), "a", "an unterminated quote runs to the end");
    }

    #[test]
    fn whitespace_written_in_pre_and_trimmed_after_it() {
        assert_eq!(to_text("<pre>x\n \n</pre>y"), "x\n \n\ny");
        assert_eq!(to_text("<pre>x \n  </pre>y"), "x \n\ny");
        assert_eq!(to_text("<pre>a  </pre><br>b"), "a\n\n\nb");
        assert_eq!(to_text("<pre>a\n</pre>\n<p>b"), "a\n\nb");
        assert_eq!(to_text(&format!("{}x", "<pre> </pre><br>".repeat(3))), "\n\n\n\n\nx");
        assert_eq!(to_text("<p>a</p><pre>  "), "a\n\n  ", "spaces of a pre never closed stay");
    }

    mod properties {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngSeed};

        use super::super::{HIDDEN, is_html_space, to_text};

        /// Reproducible unless PROPTEST_RNG_SEED says otherwise.
        fn config() -> Config {
            let mut config = Config { cases: 2_000, failure_persistence: None, ..Config::default() };
            if config.rng_seed == RngSeed::Random {
                config.rng_seed = RngSeed::Fixed(0x0068_746d);
            }
            config
        }

        fn one_of(choices: &'static [&'static str]) -> impl Strategy<Value = String> + Clone {
            prop::sample::select(choices).prop_map(str::to_owned)
        }

        /// Upper, lower or mixed case, as HTML's names may be written.
        fn any_case(name: &str) -> impl Strategy<Value = String> + Clone + use<> {
            let name = name.to_owned();
            any::<u64>().prop_map(move |bits| {
                name.chars()
                    .enumerate()
                    .map(|(i, c)| if bits >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c })
                    .collect()
            })
        }

        /// A piece of HTML and the text a reader sees of it, with `<br>` and `<pre>` if asked for. Nothing a
        /// reader sees holds an `X`, a `<` or a `>`; every piece whose content is hidden (markup, hidden
        /// elements, comments) does.
        fn piece(br: bool, pre: bool) -> BoxedStrategy<(String, String)> {
            let word = "[a-z0-9.,!?'\"=/;#-]{1,8}".prop_map(|w| (w.clone(), w));
            let space = one_of(&[" ", "\n", "\t", "  \n ", "\r\n", "\x0c"]).prop_map(|s| (s.clone(), s));
            let reference = prop::sample::select(
                &[
                    ("&amp;", "&"),
                    ("&quot;", "\""),
                    ("&eacute;", "é"),
                    ("&#233;", "é"),
                    ("&#x1F980;", "🦀"),
                    ("&nbsp;", "\u{a0}"),
                    ("&#10;", "\n"),
                    ("&#32;", " "),
                ][..],
            )
            .prop_map(|(html, text)| (html.to_owned(), text.to_owned()));
            let name = one_of(&["p", "div", "span", "a", "b", "li", "ul", "blockquote", "h1", "em", "hr"])
                .prop_flat_map(|name| any_case(&name));
            let attributes = prop::collection::vec(
                one_of(&[r#" class="X > y""#, " href='X>'", " data-X=1", r#" title="<p>X</p>""#, " X"]),
                0..3,
            )
            .prop_map(|attributes| attributes.concat());
            let open = (name.clone(), attributes.clone(), any::<bool>())
                .prop_map(|(name, attrs, empty)| (format!("<{name}{attrs}{}>", if empty { "/" } else { "" }), ""));
            let close = (name, one_of(&["", " ", " X"])).prop_map(|(name, after)| (format!("</{name}{after}>"), ""));
            let hidden_name = prop::sample::select(HIDDEN).prop_flat_map(|name| (any_case(name), any_case(name)));
            let hidden_content = prop::collection::vec(
                one_of(&["X", "<p>", "</p>", "<b>X</b>", "a ", "&amp;", "<", "</", "<!--", "\"", "'"]),
                0..6,
            );
            let hidden = (hidden_name, attributes, hidden_content).prop_map(|((open, close), attrs, content)| {
                (format!("<{open}{attrs}>{}</{close}>", content.concat()), "")
            });
            let skipped = one_of(&["<!-- X <p> -->", "<!---->", "<!DOCTYPE X>", "<?X?>", "<!X>"]).prop_map(|s| (s, ""));
            let markup = prop_oneof![open, close, hidden, skipped].prop_map(|(html, text)| (html, text.to_owned()));
            let mut pieces = prop_oneof![4 => word, 2 => space, 1 => reference, 4 => markup].boxed();
            for (asked, tags) in
                [(br, &["<br>", "<BR/>", "<br />"][..]), (pre, &["<pre>", "</pre>", "<PRE class='X'>"])]
            {
                if asked {
                    let tags = prop::sample::select(tags).prop_map(|html| (html.to_owned(), String::new()));
                    pieces = prop_oneof![6 => pieces, 1 => tags].boxed();
                }
            }
            pieces
        }

        /// HTML of generated pieces, maybe ending in an element or tag never closed, and the text a reader
        /// sees of it.
        fn html(br: bool, pre: bool) -> impl Strategy<Value = (String, String)> {
            let unclosed = one_of(&["", "<script>X a", "<svg><p>X</p></sv", "<a href=\"X", "<!-- X", "<p title='X"]);
            (prop::collection::vec(piece(br, pre), 0..40), unclosed).prop_map(|(pieces, unclosed)| {
                let (mut html, text): (String, String) = pieces.into_iter().unzip();
                html.push_str(&unclosed);
                (html, text)
            })
        }

        fn without_whitespace(text: &str) -> String {
            text.chars().filter(|c| !c.is_whitespace()).collect()
        }

        /// What holds of text outside `<pre>`: whitespace collapsed to single spaces, none at the start or end
        /// of a line, nor at the end. Without `<br>` (each a line, even at the start or after a blank one),
        /// at most a blank line between two lines, and none at the start.
        fn assert_collapsed(text: &str, br: bool) -> Result<(), TestCaseError> {
            prop_assert!(!text.contains(['\t', '\r', '\x0c']), "{text:?}");
            for shape in ["  ", " \n", "\n "] {
                prop_assert!(!text.contains(shape), "{shape:?} in {text:?}");
            }
            prop_assert!(!text.starts_with(' ') && !text.ends_with([' ', '\n']), "{text:?}");
            if !br {
                prop_assert!(!text.contains("\n\n\n") && !text.starts_with('\n'), "{text:?}");
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn the_text_is_what_a_reader_sees_and_nothing_of_the_markup((html, text) in html(true, true)) {
                let out = to_text(&html);
                prop_assert!(!out.contains(['<', '>']), "markup in {out:?} of {html:?}");
                prop_assert!(!out.contains('X'), "hidden content in {out:?} of {html:?}");
                prop_assert_eq!(without_whitespace(&out), without_whitespace(&text), "of {:?}", html);
            }

            #[test]
            fn without_pre_whitespace_collapses((html, _) in html(true, false)) {
                assert_collapsed(&to_text(&html), true)?;
            }

            #[test]
            fn without_pre_or_br_blank_lines_are_single((html, _) in html(false, false)) {
                assert_collapsed(&to_text(&html), false)?;
            }

            #[test]
            fn any_jumble_of_markup_characters_collapses(html in "[<>/&;#apsvgbrPVGBRx0-9 \n\t\"'=!-]{0,80}") {
                // No `e`: no `<pre>`.
                assert_collapsed(&to_text(&html), html.to_ascii_lowercase().contains("<br"))?;
            }

            #[test]
            fn any_string_without_pre_collapses(html in any::<String>()) {
                let lower = html.to_ascii_lowercase();
                prop_assume!(!lower.contains("<pre"));
                assert_collapsed(&to_text(&html), lower.contains("<br"))?;
            }

            #[test]
            fn text_without_markup_or_references_only_collapses(text in any::<String>()) {
                let text = text.replace(['<', '&'], "");
                let words: Vec<&str> = text.split(is_html_space).filter(|word| !word.is_empty()).collect();
                prop_assert_eq!(to_text(&text), words.join(" "));
            }
        }
    }
}
