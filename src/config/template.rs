//! The commented default configuration that `config init` writes. It is
//! `assets/config.example.toml` itself, so the two cannot drift apart.

pub const DEFAULT_FILE: &str = include_str!("../../assets/config.example.toml");

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::DEFAULT_FILE;
    use crate::config::{FileConfig, Flags, Settings};

    /// The template with every `# key = value` line uncommented.
    fn uncommented() -> String {
        DEFAULT_FILE
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest.split_once(" = ").is_some_and(|(k, _)| {
                        k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    }) =>
                {
                    rest
                }
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn template_parses_as_is_and_uncommented() {
        FileConfig::parse(DEFAULT_FILE, Path::new("template")).expect("template as is");
        FileConfig::parse(&uncommented(), Path::new("uncommented")).expect("uncommented");
    }

    /// The values the template shows are the built-in defaults, except the
    /// two it marks as examples (db, metrics.listen).
    #[test]
    fn template_shows_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, uncommented()).unwrap();
        let flags = Flags {
            config: Some(path),
            ..Flags::default()
        };
        let from_file = Settings::resolve_with(&flags, |_| None).unwrap();
        let empty = dir.path().join("empty.toml");
        std::fs::write(&empty, "").unwrap();
        let flags_empty = Flags {
            config: Some(empty),
            ..Flags::default()
        };
        let defaults = Settings::resolve_with(&flags_empty, |_| None).unwrap();
        let shown = |s: &Settings| {
            s.show()
                .lines()
                .skip(1)
                .filter(|l| !l.starts_with("db ") && !l.contains("metrics.listen"))
                .map(|l| {
                    l.split("  # ")
                        .next()
                        .unwrap()
                        .trim_start_matches("# ")
                        .trim_end()
                        .to_string()
                })
                .collect::<Vec<_>>()
        };
        let mut expected = shown(&defaults);
        // Unset, the filter is the serve default, which the template spells out.
        for line in &mut expected {
            if line.starts_with("log.filter") {
                *line = format!("log.filter = \"{}\"", crate::config::DEFAULT_SERVE_LOG);
            }
        }
        assert_eq!(shown(&from_file), expected);
    }
}
