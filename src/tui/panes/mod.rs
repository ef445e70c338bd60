//! One module per pane or dialog; each draws from `&App` (or a part of it).

pub mod audit;
pub mod detail;
pub mod dialogs;
pub mod forms;
pub mod key_list;
pub mod mcps;

use crate::domain::Timestamp;

/// A compact age such as `5m ago`, `3h ago`, `12d ago`.
pub fn ago(now: Timestamp, at: Timestamp) -> String {
    let secs = (now - at).num_seconds();
    match secs {
        i64::MIN..=-1 => "just now".to_string(),
        0..60 => "just now".to_string(),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86_400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

pub fn date(at: Timestamp) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// Month, day and time: enough for an activity log that spans weeks.
pub fn short_time(at: Timestamp) -> String {
    at.format("%m-%d %H:%M").to_string()
}

/// `1 error`, `3 errors`.
pub fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

pub fn date_time(at: Timestamp) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A one-line sparkline of block characters, scaled to the largest value.
pub fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| match v {
            0 => '·',
            _ => {
                let level = (v.saturating_mul(7) + max - 1) / max.max(1);
                BARS[usize::try_from(level).unwrap_or(7).min(7)]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_to_the_peak() {
        assert_eq!(sparkline(&[0, 1, 4, 8]), "·▂▅█");
        assert_eq!(sparkline(&[0, 0]), "··");
        assert_eq!(sparkline(&[]), "");
    }
}
