//! Sends every request to all children at once and answers with the first reply that is not an error; if every child fails, the worst reply: mcrouter's `AllFastestRoute`. See `README.md`.

use switchyard_sdk::replicate::{Fastest, Replicate};

/// Every request to every child; the wait policy `first_good`.
pub type AllFastest = Replicate<Fastest>;

switchyard_sdk::export_policy!(AllFastest);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::{Decision, Harness};
    use switchyard_sdk::{Op, Request, Wait};

    use super::*;

    #[test]
    fn every_request_goes_to_every_child() {
        let mut h =
            Harness::<AllFastest>::new("", &[("a", 1), ("b", 1), ("c", 1)]).expect("config");
        let wait = Wait::from_code(switchyard_sdk::abi::wait::FIRST_GOOD).expect("a wait code");
        assert_eq!(
            h.route(&Request::new(Op::Set, b"k")),
            Decision::FanOut {
                children: vec![0, 1, 2],
                wait,
            }
        );
    }
}
