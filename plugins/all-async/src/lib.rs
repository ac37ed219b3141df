//! Sends every request to all children and answers at once, without waiting, with the operation's default reply (a miss as memcached renders it: `END`, `NOT_STORED`, `NOT_FOUND`, `EN`, : mcrouter's `AllAsyncRoute`. See `README.md`.

use switchyard_sdk::replicate::{Async, Replicate};

/// Every request to every child; the wait policy `none`.
pub type AllAsync = Replicate<Async>;

switchyard_sdk::export_policy!(AllAsync);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::{Decision, Harness};
    use switchyard_sdk::{Op, Request, Wait};

    use super::*;

    #[test]
    fn every_request_goes_to_every_child() {
        let mut h = Harness::<AllAsync>::new("", &[("a", 1), ("b", 1), ("c", 1)]).expect("config");
        let wait = Wait::from_code(switchyard_sdk::abi::wait::NONE).expect("a wait code");
        assert_eq!(
            h.route(&Request::new(Op::Set, b"k")),
            Decision::FanOut {
                children: vec![0, 1, 2],
                wait,
            }
        );
    }
}
