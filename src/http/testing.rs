//! Helpers shared by the parsers' "never panics" tests: a tiny deterministic
//! generator and a mutator, so every parser is fed the same kind of damage.

/// xorshift64: deterministic, so a failing input can be reproduced from the seed.
pub fn next_u64(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Applies one to four random edits to `input` (overwrite, insert or delete a
/// byte drawn from `alphabet`, which should hold the bytes the grammar cares about).
pub fn mutate(input: &mut Vec<u8>, rng: &mut u64, alphabet: &[u8]) {
    for _ in 0..1 + next_u64(rng) % 4 {
        if input.is_empty() || alphabet.is_empty() {
            return;
        }
        let at = (next_u64(rng) % input.len() as u64) as usize;
        let byte = alphabet[(next_u64(rng) % alphabet.len() as u64) as usize];
        match next_u64(rng) % 3 {
            0 => input[at] = byte,
            1 => input.insert(at, byte),
            _ => {
                input.remove(at);
            }
        }
    }
}

/// A field list as httparse gives it, from `(name, value)` pairs.
pub fn fields<'a>(list: &[(&'a str, &'a str)]) -> Vec<httparse::Header<'a>> {
    list.iter()
        .map(|&(name, value)| httparse::Header {
            name,
            value: value.as_bytes(),
        })
        .collect()
}
