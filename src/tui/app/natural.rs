//! Name order as people read it: `key-2` before `key-14`, case ignored.
//! Names are split into runs of digits and of everything else; digit runs
//! compare by value, however long, so no number overflows.

use std::cmp::Ordering;

/// One run of a name: digits compare as numbers, the rest as lowercase text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Run {
    /// The digits without leading zeros (`"007"` is `"7"`).
    Number(String),
    Text(String),
}

impl Ord for Run {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            // A longer run of significant digits is a larger number.
            (Run::Number(a), Run::Number(b)) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
            (Run::Text(a), Run::Text(b)) => a.cmp(b),
            // Digits before letters, as in plain text order.
            (Run::Number(_), Run::Text(_)) => Ordering::Less,
            (Run::Text(_), Run::Number(_)) => Ordering::Greater,
        }
    }
}

impl PartialOrd for Run {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A sort key for `name` in natural order; equal keys (`key-02`, `Key-2`)
/// fall back to the lowercase then the exact text, so the order is total.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NaturalKey {
    runs: Vec<Run>,
    lower: String,
    exact: String,
}

pub fn natural_key(name: &str) -> NaturalKey {
    let lower = name.to_lowercase();
    let mut runs = Vec::new();
    let mut chars = lower.chars().peekable();
    while let Some(&first) = chars.peek() {
        let digits = first.is_ascii_digit();
        let mut run = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_digit() != digits {
                break;
            }
            run.push(c);
            chars.next();
        }
        runs.push(if digits {
            let significant = run.trim_start_matches('0');
            Run::Number(significant.to_string())
        } else {
            Run::Text(run)
        });
    }
    NaturalKey {
        runs,
        lower,
        exact: name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::natural_key;

    fn sorted(names: &[&str]) -> Vec<String> {
        let mut names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        names.sort_by_cached_key(|n| natural_key(n));
        names
    }

    #[test]
    fn numbers_sort_by_value_and_case_is_ignored() {
        assert_eq!(
            sorted(&["key-14", "key-140", "Key-3", "key-141", "key-2", "key-1"]),
            ["key-1", "key-2", "Key-3", "key-14", "key-140", "key-141"]
        );
        assert_eq!(
            sorted(&["b", "A", "a10", "a9", "a"]),
            ["A", "a", "a9", "a10", "b"]
        );
        assert_eq!(
            sorted(&["v1.10", "v1.9", "v1.9.1"]),
            ["v1.9", "v1.9.1", "v1.10"]
        );
        // Leading zeros and huge numbers: by value, then a fixed tie-break.
        assert_eq!(
            sorted(&["key-2", "key-002", "key-1"]),
            ["key-1", "key-002", "key-2"]
        );
        let huge = "n99999999999999999999999999999999999999";
        assert_eq!(sorted(&[huge, "n100", "n"]), ["n", "n100", huge]);
        assert_eq!(sorted(&["", "0", "00"]), ["", "0", "00"]);
        assert_eq!(sorted(&["生产2", "生产10"]), ["生产2", "生产10"]);
    }
}
