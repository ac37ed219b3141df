//! Sends every request to every child; the client gets the first child's reply, and the other
//! children get the request as background copies whose replies are dropped: mcrouter's
//! `AllInitialRoute`. See `README.md`.
//!
//! The background sends are built once at init, so `route` returns the same borrowed plan for
//! every request without allocating.

use switchyard_sdk::abi::MAX_BACKGROUND;
use switchyard_sdk::{Background, Child, InitContext, NoConfig, Plan, Policy, Request};

/// Most children the node may have: the first, whose reply is the client's, and one child per
/// background send a plan may carry ([`MAX_BACKGROUND`]).
pub const MAX_CHILDREN: usize = 1 + MAX_BACKGROUND;

/// The policy.
#[derive(Debug)]
pub struct AllInitial {
    /// A copy of the request to each child after the first, in index order (empty with one
    /// child).
    copies: Vec<Background<'static>>,
}

impl AllInitial {
    /// The background sends of every plan: one copy per child after the first.
    pub fn copies(&self) -> &[Background<'static>] {
        &self.copies
    }
}

impl Policy for AllInitial {
    type Config = NoConfig;

    fn init(_: NoConfig, ctx: &InitContext) -> Result<Self, String> {
        match ctx.child_count() as usize {
            0 => Err("all-initial needs at least one child (two to be of use)".into()),
            n if n > MAX_CHILDREN => Err(format!(
                "all-initial has {n} children; it takes at most {MAX_CHILDREN}: the first, \
                 whose reply the client gets, and {MAX_BACKGROUND} background copies (the most \
                 one plan may carry)"
            )),
            _ => Ok(Self {
                copies: ctx
                    .iter()
                    .skip(1)
                    .map(|(child, _)| Background::copy(child))
                    .collect(),
            }),
        }
    }

    fn route<'a>(&'a mut self, _request: &Request<'_>) -> Plan<'a> {
        let first = Plan::Forward(Child(0));
        if self.copies.is_empty() {
            first
        } else {
            first.with_background(&self.copies)
        }
    }
}

switchyard_sdk::export_policy!(AllInitial);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::{Decision, Harness, OwnedBackground, OwnedRewrite};
    use switchyard_sdk::{Op, Request};

    use super::*;

    /// The background copy of the request to `child`, as the host decodes it.
    fn copy(child: u32) -> OwnedBackground {
        OwnedBackground {
            child,
            store: None,
            compare: false,
            rewrite: OwnedRewrite::default(),
        }
    }

    const OPS: [Op; 12] = [
        Op::Get,
        Op::Gets,
        Op::Gat,
        Op::Set,
        Op::Add,
        Op::Cas,
        Op::Delete,
        Op::Incr,
        Op::Touch,
        Op::MetaGet,
        Op::MetaSet,
        Op::Other(30),
    ];

    #[test]
    fn first_child_answers_the_others_get_copies() {
        let mut h =
            Harness::<AllInitial>::new("", &[("a", 1), ("b", 1), ("c", 1)]).expect("config");
        for op in OPS {
            let request = Request::new(op, b"key").with_value_len(3).with_exptime(60);
            let decision = h.route(&request);
            assert_eq!(decision.primary(), &Decision::Forward(0), "{op:?}");
            assert_eq!(decision.rewrite(), None, "{op:?}");
            assert_eq!(decision.background(), [copy(1), copy(2)], "{op:?}");
        }
    }

    #[test]
    fn one_child_is_a_plain_forward() {
        let mut h = Harness::<AllInitial>::new("", &[("only", 1)]).expect("valid config");
        assert!(h.policy().copies().is_empty());
        for op in OPS {
            assert_eq!(h.route(&Request::new(op, b"k")), Decision::Forward(0));
        }
    }

    #[test]
    fn the_largest_node_fits_one_plan() {
        let mut h = Harness::<AllInitial>::with_weights("", &[1; MAX_CHILDREN]).expect("config");
        let decision = h.route(&Request::new(Op::Set, b"k"));
        assert_eq!(decision.primary(), &Decision::Forward(0));
        let expected: Vec<_> = (1..MAX_CHILDREN as u32).map(copy).collect();
        assert_eq!(decision.background(), expected);
    }

    #[test]
    fn config_errors() {
        let err = Harness::<AllInitial>::new("", &[]).expect_err("no children");
        assert!(err.contains("at least one child"), "{err}");

        let err =
            Harness::<AllInitial>::with_weights("", &[1; MAX_CHILDREN + 1]).expect_err("too many");
        assert!(err.contains("has 10 children"), "{err}");
        assert!(err.contains("at most 9"), "{err}");
        assert!(err.contains("8 background copies"), "{err}");

        let err = Harness::<AllInitial>::new("wait = \"first\"", &[("a", 1)]).expect_err("key");
        assert!(err.contains("unknown field `wait`"), "{err}");
    }
}
