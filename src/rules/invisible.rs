//! Characters that make shown text lie: control characters, line and
//! paragraph separators, and Unicode format characters (zero-width spaces,
//! bidi overrides and isolates, the BOM, tags). The rules refuse them in
//! names and descriptions; `visible` escapes them wherever stored text is
//! shown, for text that predates the rule or was written by another program.

use std::borrow::Cow;

/// Unicode general category Cf (Format), as of Unicode 16.0: characters
/// that draw nothing but change how the text around them is shown
/// (zero-width spaces and joiners, bidi overrides and isolates, the BOM,
/// tag characters). Checked against
/// `tests/data/unicode-format-chars.txt`.
const FORMAT_CHARS: [(char, char); 21] = [
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

/// Why a character may not appear in a one-line label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsafe {
    /// Cc: newlines, escape sequences and the like.
    Control,
    /// Zl, Zp: U+2028 and U+2029 break lines where newlines are not expected.
    Separator,
    /// Cf: draws nothing, or reorders the text that follows.
    Invisible,
}

impl Unsafe {
    pub(crate) fn of(c: char) -> Option<Unsafe> {
        if c.is_control() {
            Some(Unsafe::Control)
        } else if matches!(c, '\u{2028}' | '\u{2029}') {
            Some(Unsafe::Separator)
        } else if FORMAT_CHARS.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) {
            Some(Unsafe::Invisible)
        } else {
            None
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Unsafe::Control => "a control character",
            Unsafe::Separator => "a line or paragraph separator",
            Unsafe::Invisible => "an invisible or direction-changing character",
        }
    }
}

/// Whether `c` could make shown text lie about what it says (control
/// characters, line and paragraph separators, format characters).
pub fn is_unsafe_to_show(c: char) -> bool {
    Unsafe::of(c).is_some()
}

/// Text for a terminal: every character `is_unsafe_to_show` refuses is
/// written as `\u{XXXX}`, so a name stored by an older build or another
/// program can neither hide part of itself nor reorder the screen.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe_to_show) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe_to_show(c) {
            out.push_str(&format!("\\u{{{:04X}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table against every code point of the Unicode 16 list in
    /// tests/data (generated from a UCD table; see its header).
    #[test]
    fn format_table_matches_the_unicode_character_database() {
        let data = include_str!("../../tests/data/unicode-format-chars.txt");
        let mut listed = vec![false; 0x11_0000];
        for line in data
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (lo, hi) = line.split_once("..").unwrap_or((line, line));
            let lo = u32::from_str_radix(lo, 16).unwrap();
            let hi = u32::from_str_radix(hi, 16).unwrap();
            for cp in lo..=hi {
                listed[cp as usize] = true;
            }
        }
        for (cp, &format) in listed.iter().enumerate() {
            let Some(c) = char::from_u32(cp as u32) else {
                continue; // surrogates
            };
            let table = FORMAT_CHARS.iter().any(|&(lo, hi)| (lo..=hi).contains(&c));
            assert_eq!(table, format, "U+{cp:04X}");
        }
    }

    #[test]
    fn visible_escapes_only_what_it_must() {
        assert!(matches!(visible("plain ünïcode 生产"), Cow::Borrowed(_)));
        assert_eq!(
            visible("evil\u{202E}gnp\u{200B}\u{1b}[2J\u{2028}\u{E007F}"),
            "evil\\u{202E}gnp\\u{200B}\\u{001B}[2J\\u{2028}\\u{E007F}"
        );
        for c in ['\u{202E}', '\u{0}', '\u{7f}', '\u{2029}', '\u{FEFF}'] {
            assert!(!visible(&format!("a{c}b")).contains(c));
        }
    }
}
