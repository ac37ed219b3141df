//! Sends every request to all children at once and answers with the worst of their replies,
//! once all have answered: mcrouter's `AllSyncRoute`. See `README.md`.

use switchyard_sdk::replicate::{Replicate, Sync};

/// Every request to every child; the client gets the worst reply.
pub type AllSync = Replicate<Sync>;

switchyard_sdk::export_policy!(AllSync);

#[cfg(test)]
mod tests {
    use switchyard_sdk::plan::MAX_FAN_OUT;
    use switchyard_sdk::testing::{Decision, Harness};
    use switchyard_sdk::{Op, Request, Wait};

    use super::*;

    #[test]
    fn every_operation_goes_to_every_child() {
        let mut h = Harness::<AllSync>::new("", &[("a", 1), ("b", 2), ("c", 1)]).expect("config");
        let all = Decision::FanOut {
            children: vec![0, 1, 2],
            wait: Wait::All,
        };
        for op in [
            Op::Get,
            Op::Set,
            Op::Add,
            Op::Delete,
            Op::Incr,
            Op::Touch,
            Op::MetaSet,
            Op::Other(30),
        ] {
            let request = Request::new(op, b"key").with_value_len(1);
            assert_eq!(h.route(&request), all, "{op:?}");
        }
    }

    #[test]
    fn one_child_is_a_fan_out_of_one() {
        let mut h = Harness::<AllSync>::new("", &[("only", 1)]).expect("valid config");
        assert_eq!(
            h.route(&Request::new(Op::Set, b"k")),
            Decision::FanOut {
                children: vec![0],
                wait: Wait::All
            }
        );
    }

    #[test]
    fn many_children() {
        let mut h = Harness::<AllSync>::with_weights("", &[1; MAX_FAN_OUT]).expect("config");
        match h.route(&Request::new(Op::Delete, b"k")) {
            Decision::FanOut { children, .. } => assert_eq!(children.len(), MAX_FAN_OUT),
            other => panic!("{other:?}"),
        }
        let err =
            Harness::<AllSync>::with_weights("", &[1; MAX_FAN_OUT + 1]).expect_err("too many");
        assert!(err.contains("at most 1021"), "{err}");
    }

    #[test]
    fn config_errors() {
        let err = Harness::<AllSync>::new("", &[]).expect_err("no children");
        assert!(err.contains("at least one child"), "{err}");
        let err = Harness::<AllSync>::new("wait = \"all\"", &[("a", 1)]).expect_err("no config");
        assert!(err.contains("unknown field `wait`"), "{err}");
    }
}
