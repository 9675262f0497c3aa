//! Deterministic random strings for the "never panics on any input" tests
//! (xorshift; no dependency).

/// `count` strings of up to 31 characters drawn from `alphabet`.
pub(crate) fn strings(alphabet: &str, count: usize) -> impl Iterator<Item = String> {
    let alphabet: Vec<char> = alphabet.chars().collect();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count).map(move |_| {
        let len = (next() % 32) as usize;
        (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect()
    })
}
