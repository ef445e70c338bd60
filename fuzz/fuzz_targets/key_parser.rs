//! The key parser and tag check over arbitrary input: never a panic, and
//! every answer consistent with the documented key format.

#![no_main]

use libfuzzer_sys::fuzz_target;
use plexmcp::keys::{self, KEY_LEN, KEY_PREFIX, KeyError, ServerSecret};

fuzz_target!(|data: &[u8]| {
    let secret = ServerSecret::from_bytes([7; 32]);
    let text = String::from_utf8_lossy(data);
    check(&text, &secret);
    // The same bytes behind a valid prefix reach the later checks more often.
    check(&format!("{KEY_PREFIX}{text}"), &secret);
});

fn check(text: &str, secret: &ServerSecret) {
    match keys::parse(text) {
        Ok(parsed) => {
            assert_eq!(text.len(), KEY_LEN);
            assert!(text.starts_with(KEY_PREFIX));
            assert!(
                text[KEY_PREFIX.len()..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric())
            );
            assert_eq!(parsed.text(), text);
            assert!(keys::is_valid_id(parsed.id()));
            match keys::parse_and_check(text, secret) {
                Ok(_) => parsed.check_tag(secret).expect("tag checks agree"),
                Err(e) => assert_eq!(e, KeyError::BadTag),
            }
        }
        Err(KeyError::Empty) => assert!(text.is_empty()),
        Err(KeyError::WrongPrefix) => assert!(!text.starts_with(KEY_PREFIX)),
        Err(KeyError::WrongLength { found }) => {
            assert_eq!(found, text.chars().count());
            assert_ne!(found, KEY_LEN);
        }
        Err(KeyError::InvalidCharacter) => assert_eq!(text.chars().count(), KEY_LEN),
        Err(KeyError::BadTag) => panic!("parse alone never checks the tag"),
    }
    // Hashing a presented text for the verified-keys cache takes anything.
    let _ = keys::fingerprint(text);
}
