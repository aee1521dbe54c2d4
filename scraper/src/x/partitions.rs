//! The sample10 partitions one scraper reads, as an operator writes them: `1-4`, `1,3,5`, or both (`1-2,5`).

use std::str::FromStr;

/// The sample10 stream's partitions, numbered from 1.
pub const PARTITIONS: std::ops::RangeInclusive<u8> = 1..=20;

/// Partitions in the order given, each once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partitions(pub Vec<u8>);

impl FromStr for Partitions {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut partitions = Vec::new();
        for item in text.split(',').map(str::trim) {
            let (first, last) = match item.split_once('-') {
                Some((first, last)) => (partition(first)?, partition(last)?),
                None => (partition(item)?, partition(item)?),
            };
            if first > last {
                return Err(format!("`{item}` is an empty range: write the lower partition first"));
            }
            for p in first..=last {
                // Two connections to one partition would only bring every post twice.
                if partitions.contains(&p) {
                    return Err(format!("partition {p} is named twice"));
                }
                partitions.push(p);
            }
        }
        Ok(Self(partitions))
    }
}

fn partition(text: &str) -> Result<u8, String> {
    let text = text.trim();
    match text.parse::<u8>() {
        Ok(p) if PARTITIONS.contains(&p) => Ok(p),
        _ => Err(format!("`{text}` is not a partition: partitions are 1 to 20, e.g. `1-4` or `1,3,5`")),
    }
}

#[cfg(test)]
mod tests {
    use super::Partitions;

    fn parse(text: &str) -> Result<Vec<u8>, String> {
        text.parse::<Partitions>().map(|p| p.0)
    }

    #[test]
    fn ranges_and_lists_name_each_partition_once() {
        assert_eq!(parse("1-4").unwrap(), [1, 2, 3, 4]);
        assert_eq!(parse("1,3,5").unwrap(), [1, 3, 5]);
        assert_eq!(parse(" 7 , 1-2 ").unwrap(), [7, 1, 2]);
        assert_eq!(parse("20").unwrap(), [20]);
        assert_eq!(parse("1-20").unwrap().len(), 20);
    }

    #[test]
    fn what_is_not_a_list_of_partitions_says_why() {
        for (text, why) in [
            ("0", "partitions are 1 to 20"),
            ("21", "partitions are 1 to 20"),
            ("1-21", "partitions are 1 to 20"),
            ("", "is not a partition"),
            ("1,,2", "is not a partition"),
            ("a-b", "is not a partition"),
            ("4-1", "empty range"),
            ("1-3,2", "partition 2 is named twice"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(why), "{text:?}: {error}");
        }
    }
}
