//! Sends every request to all children at once and answers with the first reply status (not an error) that more than half of the children give; once no status can reach a majority any more, the worst reply so far: mcrouter's `AllMajorityRoute`. See `README.md`.

use switchyard_sdk::replicate::{Majority, Replicate};

/// Every request to every child; the wait policy `majority`.
pub type AllMajority = Replicate<Majority>;

switchyard_sdk::export_policy!(AllMajority);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::{Decision, Harness};
    use switchyard_sdk::{Op, Request, Wait};

    use super::*;

    #[test]
    fn every_request_goes_to_every_child() {
        let mut h =
            Harness::<AllMajority>::new("", &[("a", 1), ("b", 1), ("c", 1)]).expect("config");
        let wait = Wait::from_code(switchyard_sdk::abi::wait::MAJORITY).expect("a wait code");
        assert_eq!(
            h.route(&Request::new(Op::Set, b"k")),
            Decision::FanOut {
                children: vec![0, 1, 2],
                wait,
            }
        );
    }
}
