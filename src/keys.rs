//! API keys: generating, parsing, tag-checking and hashing them.
//!
//! This module is pure: it does no file, network or database I/O, so every
//! rule about what a key looks like and how it is verified lives in one place
//! that can be tested on its own.
//!
//! # Key format
//!
//! ```text
//! pmcp_ IIIIIIII SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS TTTTTT   (51 characters, no spaces)
//!       ID (8)   SECRET (32)                      TAG (6)
//! ```
//!
//! Every character after `pmcp_` comes from the base62 alphabet `0-9A-Za-z`.
//!
//! - **ID** is random and public: it names the key in lists and is how the
//!   store finds the row to verify against, so lookups never scan every hash.
//! - **SECRET** is 32 random characters (about 190 bits).
//! - **TAG** is an HMAC-SHA256 over `pmcp_` + ID + SECRET, keyed with a
//!   per-database [`ServerSecret`], reduced to 6 base62 digits. It lets the
//!   gateway reject mistyped keys and keys from other installations cheaply,
//!   before spending an argon2 hash on them. It is not the security boundary:
//!   the argon2id hash of the whole key is.
//!
//! The fixed prefix makes leaked keys easy for secret scanners to spot.

use std::fmt;

use argon2::password_hash::phc::PasswordHash;
use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version,
};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Every key starts with this.
pub const KEY_PREFIX: &str = "pmcp_";
/// Length of the public ID part.
pub const ID_LEN: usize = 8;
/// Length of the random secret part.
pub const SECRET_LEN: usize = 32;
/// Length of the integrity tag.
pub const TAG_LEN: usize = 6;
/// Length of a whole key in characters (all ASCII, so also in bytes).
pub const KEY_LEN: usize = 51;

const PREFIX_LEN: usize = KEY_PREFIX.len();
const ID_END: usize = PREFIX_LEN + ID_LEN;
/// Where the tagged part (prefix + ID + SECRET) ends and the tag begins.
const BODY_LEN: usize = ID_END + SECRET_LEN;

const _: () = assert!(BODY_LEN + TAG_LEN == KEY_LEN);

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Bytes at or above this are rejected so that `b % 62` is uniform
/// (248 = 4 * 62).
const REJECT_FROM: u8 = 248;
/// 62^6: the number of distinct tags.
const TAG_MODULUS: u64 = 62u64.pow(TAG_LEN as u32);

/// OWASP's recommended argon2id parameters (memory in KiB, iterations, lanes).
const ARGON2_M_COST: u32 = 19_456;
const ARGON2_T_COST: u32 = 2;
const ARGON2_P_COST: u32 = 1;

/// Upper bounds on the cost parameters `verify_hash` accepts from a stored
/// PHC string, so a corrupted row cannot make us allocate gigabytes or spin.
const MAX_VERIFY_M_COST: u32 = 1 << 20; // 1 GiB
const MAX_VERIFY_T_COST: u32 = 16;
const MAX_VERIFY_P_COST: u32 = 16;

/// Why presented text is not an acceptable key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key is empty")]
    Empty,
    #[error("key does not start with pmcp_")]
    WrongPrefix,
    #[error("key has {found} characters, expected 51")]
    WrongLength { found: usize },
    #[error("key contains a character outside 0-9, A-Z, a-z")]
    InvalidCharacter,
    #[error("key failed its integrity check (mistyped or not issued here)")]
    BadTag,
}

/// Argon2 refused to hash (only possible with invalid parameters or an RNG
/// failure while making the salt).
#[derive(Debug, thiserror::Error)]
#[error("could not hash key: {0}")]
pub struct HashError(String);

/// The 32-byte per-database secret that keys the integrity tag.
///
/// Zeroized on drop; `Debug` never shows the bytes.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ServerSecret([u8; 32]);

impl ServerSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh secret from the OS CSPRNG.
    ///
    /// # Panics
    /// If the OS random source fails; there is no safe way to continue.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        os_fill(&mut bytes);
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecret(..)")
    }
}

/// A whole key in text form, as handed to the user once at creation.
///
/// The text lives in a buffer that is zeroized on drop. `Debug` shows only the
/// public prefix, and there is deliberately no `Display`, so the secret cannot
/// end up in logs by accident: [`ApiKey::expose`] is the only way to read it.
pub struct ApiKey(Zeroizing<String>);

impl ApiKey {
    /// The full 51-character key text.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The 8-character public ID.
    pub fn id(&self) -> &str {
        // Built by `generate_with`, so always 51 ASCII characters.
        &self.0[PREFIX_LEN..ID_END]
    }

    /// `pmcp_` + ID: what lists and logs may show.
    pub fn prefix(&self) -> String {
        format!("{KEY_PREFIX}{}", self.id())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…)", self.prefix())
    }
}

/// Generate a new key using the OS CSPRNG.
///
/// # Panics
/// If the OS random source fails; there is no safe way to continue.
pub fn generate(server: &ServerSecret) -> ApiKey {
    generate_with(server, os_fill)
}

/// Generate a new key drawing random bytes from `fill`.
///
/// [`generate`] passes the OS CSPRNG; tests pass a deterministic filler.
pub fn generate_with(server: &ServerSecret, mut fill: impl FnMut(&mut [u8])) -> ApiKey {
    // Capacity is exact so the String never reallocates and leaves a copy of
    // the secret behind in freed memory.
    let mut text = Zeroizing::new(String::with_capacity(KEY_LEN));
    text.push_str(KEY_PREFIX);

    // Rejection sampling discards about 3% of bytes, so a buffer a bit larger
    // than the 40 characters needed usually takes a single fill.
    let mut buf = Zeroizing::new([0u8; 48]);
    let mut used = buf.len();
    while text.len() < BODY_LEN {
        if used == buf.len() {
            fill(&mut buf[..]);
            used = 0;
        }
        let b = buf[used];
        used += 1;
        if b < REJECT_FROM {
            text.push(char::from(ALPHABET[usize::from(b % 62)]));
        }
    }

    let tag = compute_tag(server, &text);
    for &c in &tag {
        text.push(char::from(c));
    }
    debug_assert_eq!(text.len(), KEY_LEN);
    ApiKey(text)
}

/// A syntactically valid key, borrowed from the presented text.
///
/// Parsing does not check the tag; call [`ParsedKey::check_tag`] or use
/// [`parse_and_check`].
#[derive(Clone, Copy)]
pub struct ParsedKey<'a> {
    // Invariant: exactly KEY_LEN ASCII bytes, prefix then base62.
    text: &'a str,
}

impl<'a> ParsedKey<'a> {
    /// The 8-character public ID.
    pub fn id(&self) -> &'a str {
        &self.text[PREFIX_LEN..ID_END]
    }

    /// The whole presented key text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// Recompute the tag under `server` and compare it in constant time.
    pub fn check_tag(&self, server: &ServerSecret) -> Result<(), KeyError> {
        let expected = compute_tag(server, &self.text[..BODY_LEN]);
        let presented = &self.text.as_bytes()[BODY_LEN..];
        if bool::from(expected[..].ct_eq(presented)) {
            Ok(())
        } else {
            Err(KeyError::BadTag)
        }
    }
}

impl fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ParsedKey({KEY_PREFIX}{}…)", self.id())
    }
}

/// Check that `text` has the shape of a key.
///
/// The text is taken exactly as given (no trimming). Checks run in this
/// order: empty, prefix, length in characters, alphabet.
pub fn parse(text: &str) -> Result<ParsedKey<'_>, KeyError> {
    if text.is_empty() {
        return Err(KeyError::Empty);
    }
    let Some(rest) = text.strip_prefix(KEY_PREFIX) else {
        return Err(KeyError::WrongPrefix);
    };
    // Count characters rather than bytes so a non-ASCII key reports the
    // length the user sees.
    let found = text.chars().count();
    if found != KEY_LEN {
        return Err(KeyError::WrongLength { found });
    }
    if !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(KeyError::InvalidCharacter);
    }
    // From here on the text is KEY_LEN ASCII bytes, so byte slicing is safe.
    Ok(ParsedKey { text })
}

/// [`parse`], then [`ParsedKey::check_tag`].
pub fn parse_and_check<'a>(
    text: &'a str,
    server: &ServerSecret,
) -> Result<ParsedKey<'a>, KeyError> {
    let key = parse(text)?;
    key.check_tag(server)?;
    Ok(key)
}

/// True if `s` is a well-formed key ID (8 base62 characters).
pub fn is_valid_id(s: &str) -> bool {
    s.len() == ID_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Hash the whole key text with argon2id for storage, as a PHC string.
///
/// Uses OWASP's parameters (m=19456 KiB, t=2, p=1) and a random 16-byte salt.
pub fn hash_key(key: &ApiKey) -> Result<String, HashError> {
    let params = Params::new(ARGON2_M_COST, ARGON2_T_COST, ARGON2_P_COST, None)
        .map_err(|e| HashError(e.to_string()))?;
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    // argon2 0.6 draws the salt from the OS RNG itself.
    let hash = hasher
        .hash_password(key.expose().as_bytes())
        .map_err(|e| HashError(e.to_string()))?;
    Ok(hash.to_string())
}

/// True if `presented` matches the stored argon2id PHC string `phc`.
///
/// Anything unexpected in `phc` (malformed, another algorithm, absurd cost
/// parameters) gives `false` rather than an error or panic.
pub fn verify_hash(presented: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    // Only accept what `hash_key` produces, so a tampered row cannot
    // downgrade to argon2i/argon2d.
    if hash.algorithm != ARGON2ID_IDENT {
        return false;
    }
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    if params.m_cost() > MAX_VERIFY_M_COST
        || params.t_cost() > MAX_VERIFY_T_COST
        || params.p_cost() > MAX_VERIFY_P_COST
    {
        return false;
    }
    // The verifier takes algorithm, version and parameters from the hash.
    Argon2::default()
        .verify_password(presented.as_bytes(), &hash)
        .is_ok()
}

/// SHA-256 of the presented text.
///
/// Lets an in-memory cache remember recently verified keys without holding
/// the key text itself.
pub fn fingerprint(presented: &str) -> [u8; 32] {
    Sha256::digest(presented.as_bytes()).into()
}

/// The 6 base62 tag characters for `body` (= `pmcp_` + ID + SECRET).
fn compute_tag(server: &ServerSecret, body: &str) -> [u8; TAG_LEN] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(server.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body.as_bytes());
    let out = mac.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&out.as_bytes()[..8]);
    let mut value = u64::from_be_bytes(first) % TAG_MODULUS;

    let mut tag = [b'0'; TAG_LEN];
    for slot in tag.iter_mut().rev() {
        // `value % 62` is below 62, so the cast and index are in range.
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    tag
}

/// Fill `buf` from the OS CSPRNG.
fn os_fill(buf: &mut [u8]) {
    // Without OS randomness no key or secret can be made safely.
    getrandom::fill(buf).expect("OS random number generator failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> ServerSecret {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        ServerSecret::from_bytes(bytes)
    }

    /// A deterministic byte stream (32-bit LCG, high byte).
    fn lcg_filler() -> impl FnMut(&mut [u8]) {
        let mut state: u32 = 1;
        move |buf: &mut [u8]| {
            for b in buf {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *b = (state >> 24) as u8;
            }
        }
    }

    fn is_base62(s: &str) -> bool {
        s.bytes().all(|b| ALPHABET.contains(&b))
    }

    /// Replace the character at byte `pos` of an ASCII key with `c`.
    fn with_char_at(key: &str, pos: usize, c: char) -> String {
        let mut s = String::new();
        s.push_str(&key[..pos]);
        s.push(c);
        s.push_str(&key[pos + 1..]);
        s
    }

    #[test]
    fn round_trip() {
        let server = server();
        let key = generate(&server);
        let text = key.expose();
        assert_eq!(text.len(), KEY_LEN);
        assert_eq!(text.chars().count(), KEY_LEN);
        assert!(text.starts_with(KEY_PREFIX));
        assert!(is_base62(&text[PREFIX_LEN..]));

        let parsed = parse_and_check(text, &server).unwrap();
        assert_eq!(parsed.text(), text);
        assert_eq!(parsed.id(), key.id());
        assert_eq!(key.id().len(), ID_LEN);
        assert!(is_valid_id(key.id()));
        assert_eq!(key.prefix(), format!("pmcp_{}", key.id()));
        assert!(text.starts_with(&key.prefix()));

        let other = generate(&server);
        assert_ne!(key.expose(), other.expose());
        assert_ne!(key.id(), other.id());
    }

    #[test]
    fn deterministic_filler_gives_known_key() {
        let server = server();
        // Cross-checked with an independent HMAC-SHA256 implementation.
        const EXPECTED: &str = "pmcp_3QdAPVW5FAnZp1AeOeflNIeit4tFgzrqOdGnnThvCsmqu3";
        let a = generate_with(&server, lcg_filler());
        let b = generate_with(&server, lcg_filler());
        assert_eq!(a.expose(), EXPECTED);
        assert_eq!(b.expose(), EXPECTED);
        assert_eq!(a.id(), "3QdAPVW5");
        assert!(parse_and_check(a.expose(), &server).is_ok());
    }

    #[test]
    fn rejection_sampling_skips_high_bytes() {
        let server = server();
        // Emits 248, 0, 249, 1, 250, 2, ...: every other byte must be skipped.
        let mut n: u32 = 0;
        let filler = move |buf: &mut [u8]| {
            for b in buf {
                *b = if n.is_multiple_of(2) {
                    248 + (n / 2 % 8) as u8
                } else {
                    (n / 2) as u8
                };
                n += 1;
            }
        };
        let key = generate_with(&server, filler);
        assert_eq!(
            &key.expose()[..BODY_LEN],
            "pmcp_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcd"
        );
        assert!(parse_and_check(key.expose(), &server).is_ok());

        // The edges of the accepted range: 62 wraps to '0', 247 is 'z'.
        let edges = generate_with(&server, |buf: &mut [u8]| {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = if i % 2 == 0 { 62 } else { 247 };
            }
        });
        assert_eq!(&edges.expose()[PREFIX_LEN..ID_END], "0z0z0z0z");
    }

    #[test]
    fn malformed_keys_are_rejected() {
        let good = generate_with(&server(), lcg_filler());
        let good = good.expose();
        let body = &good[PREFIX_LEN..];

        assert_eq!(parse("").unwrap_err(), KeyError::Empty);

        for prefix in ["PMCP_", "pmc_", "sk_", "pmcp-", ""] {
            let text = format!("{prefix}{body}");
            assert_eq!(parse(&text).unwrap_err(), KeyError::WrongPrefix, "{text}");
        }
        assert_eq!(parse("pmcp").unwrap_err(), KeyError::WrongPrefix);
        assert_eq!(
            parse(&format!(" {good}")).unwrap_err(),
            KeyError::WrongPrefix
        );

        assert_eq!(
            parse("pmcp_").unwrap_err(),
            KeyError::WrongLength { found: 5 }
        );
        assert_eq!(
            parse(&good[..KEY_LEN - 1]).unwrap_err(),
            KeyError::WrongLength { found: 50 }
        );
        assert_eq!(
            parse(&format!("{good}A")).unwrap_err(),
            KeyError::WrongLength { found: 52 }
        );
        for ws in [" ", "\n", "\r\n", "\t"] {
            let text = format!("{good}{ws}");
            assert!(matches!(
                parse(&text).unwrap_err(),
                KeyError::WrongLength { .. }
            ));
        }

        // Same length, one bad character, at every position after the prefix.
        for pos in PREFIX_LEN..KEY_LEN {
            for c in ['-', '_', ' ', '=', 'é', '€', '😀', '\0'] {
                let text = with_char_at(good, pos, c);
                assert_eq!(
                    parse(&text).unwrap_err(),
                    KeyError::InvalidCharacter,
                    "{c:?} at {pos}"
                );
            }
        }
        // Multi-byte characters that also change the char count.
        assert_eq!(
            parse(&format!("{good}é")).unwrap_err(),
            KeyError::WrongLength { found: 52 }
        );
        let short = format!("{}é", &good[..KEY_LEN - 2]);
        assert_eq!(
            parse(&short).unwrap_err(),
            KeyError::WrongLength { found: 50 }
        );
        // Non-ASCII inside and right after the prefix must not panic.
        for text in ["pmcé_", "pmcp\u{e9}", "ééééé", "pmcp_é", "😀"] {
            assert!(parse(text).is_err());
        }
        // 51 bytes but fewer characters: counted as characters.
        let bytes51 = format!("pmcp_{}é", &body[..44]);
        assert_eq!(bytes51.len(), KEY_LEN);
        assert_eq!(
            parse(&bytes51).unwrap_err(),
            KeyError::WrongLength { found: 50 }
        );
    }

    #[test]
    fn any_single_character_change_fails_tag() {
        let server = server();
        let key = generate_with(&server, lcg_filler());
        let good = key.expose();
        for pos in PREFIX_LEN..KEY_LEN {
            let original = good.as_bytes()[pos];
            // Try a few replacements per position, always a different char.
            for step in [1, 31, 61] {
                let idx = ALPHABET.iter().position(|&c| c == original).unwrap();
                let c = char::from(ALPHABET[(idx + step) % 62]);
                let text = with_char_at(good, pos, c);
                let parsed = parse(&text).unwrap();
                assert_eq!(
                    parsed.check_tag(&server),
                    Err(KeyError::BadTag),
                    "{c:?} at {pos}"
                );
                assert_eq!(
                    parse_and_check(&text, &server).unwrap_err(),
                    KeyError::BadTag
                );
            }
        }
    }

    #[test]
    fn tag_is_bound_to_server_secret() {
        let a = server();
        let b = ServerSecret::generate();
        assert_ne!(a.as_bytes(), b.as_bytes());
        let key = generate(&a);
        assert!(parse_and_check(key.expose(), &a).is_ok());
        assert_eq!(
            parse_and_check(key.expose(), &b).unwrap_err(),
            KeyError::BadTag
        );
        // A clone keys the tag identically.
        assert!(parse_and_check(key.expose(), &a.clone()).is_ok());
    }

    #[test]
    fn valid_ids() {
        assert!(is_valid_id("AbCd1234"));
        assert!(is_valid_id("00000000"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("AbCd123"));
        assert!(!is_valid_id("AbCd12345"));
        assert!(!is_valid_id("AbCd-234"));
        assert!(!is_valid_id("AbCd123é"));
        assert!(!is_valid_id("AbCé123"));
        assert!(!is_valid_id(" AbCd1234"));
    }

    #[test]
    fn hash_and_verify() {
        let key = generate(&server());
        let phc = hash_key(&key).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains(key.expose()));
        assert!(verify_hash(key.expose(), &phc));

        let last = key.expose().as_bytes()[KEY_LEN - 1];
        let swapped = if last == b'A' { 'B' } else { 'A' };
        let wrong = with_char_at(key.expose(), KEY_LEN - 1, swapped);
        assert!(!verify_hash(&wrong, &phc));
        assert!(!verify_hash("", &phc));

        // Salts are random: hashing again gives a different string.
        let again = hash_key(&key).unwrap();
        assert_ne!(phc, again);
        assert!(verify_hash(key.expose(), &again));
    }

    #[test]
    fn verify_rejects_bad_phc() {
        let key = "pmcp_3QdAPVW5FAnZp1AeOeflNIeit4tFgzrqOdGnnThvCsmqu3";
        for phc in [
            "",
            "garbage",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$",
            "$argon2id$v=19$m=19456,t=2,p=1$!!!$###",
            // Absurd costs must be refused before any work is done.
            "$argon2id$v=19$m=4294967295,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=19$m=19456,t=4294967295,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            // Other algorithms are refused.
            "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
            "é$argon2id",
        ] {
            assert!(!verify_hash(key, phc), "{phc}");
        }
    }

    #[test]
    fn fingerprint_is_sha256() {
        // SHA-256("abc") from FIPS 180-2.
        let expected: [u8; 32] = [
            0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
            0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
            0xf2, 0x00, 0x15, 0xad,
        ];
        assert_eq!(fingerprint("abc"), expected);
        assert_ne!(fingerprint("abc"), fingerprint("abd"));
    }

    #[test]
    fn debug_hides_secrets() {
        let server = ServerSecret::from_bytes([0xAB; 32]);
        let shown = format!("{server:?}");
        assert_eq!(shown, "ServerSecret(..)");
        assert!(!shown.contains("171"));

        let key = generate_with(&server, lcg_filler());
        let secret = &key.expose()[ID_END..BODY_LEN];
        let shown = format!("{key:?}");
        assert_eq!(shown, format!("ApiKey(pmcp_{}…)", key.id()));
        assert!(!shown.contains(secret));
        assert!(!shown.contains(&key.expose()[BODY_LEN..]));

        let parsed = parse(key.expose()).unwrap();
        let shown = format!("{parsed:?}");
        assert!(!shown.contains(secret));
        assert!(shown.contains(key.id()));
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            KeyError::WrongLength { found: 7 }.to_string(),
            "key has 7 characters, expected 51"
        );
        assert_eq!(HashError("x".into()).to_string(), "could not hash key: x");
    }
}
