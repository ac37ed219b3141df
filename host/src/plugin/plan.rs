//! The host's reading of a plugin's answer (`sdk/ABI.md`, "Plans"): the SDK's decoder, so the
//! host accepts exactly what a plugin's native tests were checked against. Everything a plugin
//! returns is checked there; `route` and `execute` only ever see valid plans, as a
//! [`Decision`]: the one decoded plan type, the SDK's and the plugin tests', which the host
//! matches exhaustively (a new kind of plan does not compile until the host carries it out).

use switchyard_sdk::abi;
pub use switchyard_sdk::decision::{Decision, OwnedBackground, OwnedReply, OwnedRewrite};

/// Decodes the word `route` or `on_reply` returned, reading the plan buffer (at `plan_buf` in
/// the guest's `memory`) when the word points there. `children` is the node's child count.
pub fn decode(
    word: u64,
    memory: &[u8],
    plan_buf: usize,
    children: usize,
) -> Result<Decision, String> {
    let end = plan_buf
        .saturating_add(abi::PLAN_CAPACITY)
        .min(memory.len());
    let buffer = memory.get(plan_buf..end).unwrap_or_default();
    switchyard_sdk::decision::decode_plan(word, buffer, children as u32).map_err(|f| f.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::abi::{entry, tag, wait};

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn reads_the_plan_buffer_at_its_offset() {
        let mut mem = vec![0u8; 8];
        mem.extend(words(&[entry::FAN_OUT, 3, wait::ALL, 0, 1]));
        let w = abi::encode_plan_word(tag::PLAN, 0, 20);
        assert_eq!(
            decode(w, &mem, 8, 2),
            Ok(Decision::FanOut {
                children: vec![0, 1],
                wait: switchyard_sdk::Wait::All
            })
        );
        assert!(decode(w, &mem, 8, 1).is_err(), "child out of range");
        assert!(decode(w, &mem, 100, 2).is_err(), "buffer outside memory");
    }
}
