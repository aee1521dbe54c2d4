//! The cost of a status's HTML to text on shapes built to be slow, in one run: each input about as large as
//! the others, timed against plain text of the same size, so that a shape that costs more than its size
//! shows as a ratio well above 1 (the quadratic ones took thousands of times plain text's time).
//!
//!     cargo bench -p inserter --bench html -- [--kib 900] [--rounds 7]
//!
//! Prints the median time of each shape and its ratio to plain text.

use std::hint::black_box;
use std::time::{Duration, Instant};

// Called directly, not through a status's JSON: that would add the JSON's decoding to every shape alike.
use inserter::mapping::html;

struct Args {
    bytes: usize,
    rounds: u32,
}

fn args() -> Option<Args> {
    // Test runners (`cargo nextest run --all-targets`) ask every bench target for its tests: it has none.
    if std::env::args().any(|arg| arg == "--list") {
        return None;
    }
    let mut args = Args { bytes: 900 * 1024, rounds: 7 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value =
            || it.next().and_then(|v| v.parse::<usize>().ok()).unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--kib" => args.bytes = value() * 1024,
            "--rounds" => args.rounds = value() as u32,
            "--bench" => {}
            other => panic!("unknown flag {other}; see the file's header"),
        }
    }
    Some(args)
}

/// `unit` repeated to `bytes`, between `head` and `tail`.
fn repeated(head: &str, unit: &str, tail: &str, bytes: usize) -> String {
    let mut input = String::with_capacity(bytes + unit.len());
    input.push_str(head);
    while input.len() + tail.len() < bytes {
        input.push_str(unit);
    }
    input.push_str(tail);
    input
}

/// `<name>` nested as deep as `bytes` allows, around one letter.
fn nested(name: &str, bytes: usize) -> String {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let depth = bytes / (open.len() + close.len());
    format!("{}x{}", open.repeat(depth), close.repeat(depth))
}

/// Each shape by name, `bytes` long or about.
fn shapes(bytes: usize) -> Vec<(&'static str, String)> {
    vec![
        ("plain text", repeated("", "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", "", bytes)),
        (
            "a status's paragraphs and links",
            repeated(
                "",
                concat!(
                    r#"<p>Hello <span class="h-card"><a href="https://mastodon.social/@a" class="u-url mention">@<span>a</span></a></span> "#,
                    r#"see <a href="https://example.com/" rel="nofollow noopener"><span class="invisible">https://</span>example.com</a> &amp; more<br>"#,
                    r#"<a href="https://mastodon.social/tags/Rust" class="mention hashtag" rel="tag">#<span>Rust</span></a></p>"#,
                ),
                "",
                bytes,
            ),
        ),
        ("<p><br> repeated", repeated("", "<p><br>", "", bytes)),
        ("<br> repeated", repeated("", "<br>", "", bytes)),
        ("<svg></svg> repeated", repeated("", "<svg></svg>", "", bytes)),
        ("<SCRIPT>x</script > repeated", repeated("", "<SCRIPT>x</script >", "", bytes)),
        ("<pre> </pre><br> repeated", repeated("", "<pre> </pre><br>", "", bytes)),
        ("<span> nested, then closed", nested("span", bytes)),
        ("<div> nested, then closed", nested("div", bytes)),
        ("&amp; repeated", repeated("", "&amp;", "", bytes)),
        (
            "references of every kind",
            repeated("", "&eacute;&#233;&#x1F980;&copy &#99999999999;&unknown;&#; ", "", bytes),
        ),
        ("& and a name that never ends", repeated("&", "x", "", bytes)),
        ("&# and digits that never end", repeated("&#", "9", "", bytes)),
        ("an unclosed <svg>", repeated("<svg>", "Lorem ipsum dolor sit amet, </sv </s ", "", bytes)),
        ("an unclosed comment", repeated("<!--", "Lorem ipsum -- dolor -> sit ", "", bytes)),
        ("< that opens no tag", repeated("", "a <3 ", "", bytes)),
        ("a tag that never ends", repeated("x <a", " title=\"y\"", "", bytes)),
        ("one tag of many attributes", repeated("<a", r#" x="1>2" y='<p>'"#, ">t</a>", bytes)),
        ("spaces and newlines", repeated("x", " \n\t\r ", "y", bytes)),
    ]
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let Some(args) = args() else { return };
    let shapes = shapes(args.bytes);
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); shapes.len()];
    // Round 0 warms the caches and the allocator and is not counted; the shapes alternate within each round
    // so that all see the same machine.
    for round in 0..=args.rounds {
        for (n, (_, input)) in shapes.iter().enumerate() {
            let started = Instant::now();
            black_box(html::to_text(black_box(input)));
            let elapsed = started.elapsed();
            if round > 0 {
                times[n].push(elapsed);
            }
        }
    }
    let plain = median(times[0].clone());
    println!("html to text of {} KiB, median of {} rounds:", args.bytes / 1024, args.rounds);
    for ((name, input), times) in shapes.iter().zip(times) {
        let time = median(times);
        println!(
            "  {name:<34} {:>4} KiB {:>10.2?}  {:>6.2}x plain text",
            input.len() / 1024,
            time,
            time.as_secs_f64() / plain.as_secs_f64()
        );
    }
}
