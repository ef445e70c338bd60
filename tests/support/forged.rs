//! Keys that look right but are not: the real id with a valid tag and the
//! wrong secret (refused only by argon2), or a broken integrity tag.

/// A key with the id of `real` and a valid integrity tag under `secret`,
/// but a different secret part chosen by `seed`: it passes every cheap
/// check and is refused only by argon2.
pub fn same_id_wrong_secret(
    secret: &plexmcp::keys::ServerSecret,
    real: &str,
    seed: u32,
) -> plexmcp::keys::ApiKey {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let real = plexmcp::keys::parse(real).expect("a well-formed real key");
    // The generator turns a byte b below 248 into ALPHABET[b % 62]: feed it
    // the id's own characters, then secret characters from a small LCG.
    let mut bytes: Vec<u8> = real
        .id()
        .bytes()
        .map(|c| u8::try_from(ALPHABET.iter().position(|&a| a == c).expect("base62")).unwrap())
        .collect();
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    for _ in 0..plexmcp::keys::SECRET_LEN {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        bytes.push(u8::try_from((state >> 16) % 62).unwrap());
    }
    let mut fed = 0;
    let key = plexmcp::keys::generate_with(secret, |buf| {
        for b in buf.iter_mut() {
            *b = bytes.get(fed).copied().unwrap_or(0);
            fed += 1;
        }
    });
    assert_eq!(key.id(), real.id());
    assert_ne!(
        key.expose(),
        real.text(),
        "seed {seed} reproduced the real key"
    );
    plexmcp::keys::parse_and_check(key.expose(), secret).expect("tag-valid forgery");
    key
}

/// `key` with one character of its secret part changed: the right shape and
/// the real id, but an integrity tag that no longer matches.
pub fn bad_tag(key: &str, variant: usize) -> String {
    let start = plexmcp::keys::KEY_PREFIX.len() + plexmcp::keys::ID_LEN;
    let at = start + variant % plexmcp::keys::SECRET_LEN;
    let mut bytes = key.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).expect("ASCII key")
}
