//! A hashing policy: every key goes to one child, by a consistent hash of the key (the SDK's
//! ketama ring, as twemproxy places keys). Keys of a child the host marks down move to the next
//! healthy child on the ring when `eject = true`, counted in its counter `ejected` (`stats
//! plugins`: `<node>:counter:ejected`).

use serde::Deserialize;
use switchyard_sdk::metrics::Counter;
use switchyard_sdk::select::Ketama;
use switchyard_sdk::{HashAlgorithm, InitContext, Plan, Policy, Request, host};

/// The node's `config` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Move a down child's keys to the next healthy child instead of failing them.
    #[serde(default)]
    pub eject: bool,
}

/// The policy: a ring built once, in `init`.
#[derive(Debug)]
pub struct Hash {
    ring: Ketama,
    eject: bool,
    /// Requests moved off a child that is down.
    ejected: Counter,
}

impl Policy for Hash {
    type Config = Config;

    fn init(config: Config, ctx: &InitContext) -> Result<Self, String> {
        let children = ctx.children().iter().map(|c| (c.name(), c.weight()));
        Ok(Hash {
            ring: Ketama::new(children)?,
            eject: config.eject,
            ejected: Counter::define("ejected")?,
        })
    }

    fn route<'a>(&'a mut self, request: &Request<'_>) -> Plan<'a> {
        let hash = host::hash(HashAlgorithm::Md5, request.key());
        let child = self.ring.lookup(hash);
        if self.eject && !host::child_healthy(child) {
            self.ejected.increment();
            return Plan::Forward(self.ring.lookup_healthy(hash, host::child_healthy));
        }
        Plan::Forward(child)
    }
}

switchyard_sdk::export_policy!(Hash);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::Harness;
    use switchyard_sdk::{Op, Request};

    const THREE: &[(&str, u32)] = &[("a", 1), ("b", 1), ("c", 1)];

    #[test]
    fn a_key_always_goes_to_the_same_child() {
        let mut h = Harness::<Hash>::new("", THREE).expect("config");
        let get = Request::new(Op::Get, b"user:42");
        let first = h.forwarded(&get);
        assert_eq!(h.forwarded(&Request::new(Op::Set, b"user:42")), first);
        assert!(first < 3);
    }

    #[test]
    fn eject_moves_a_down_childs_keys_only() {
        let mut h = Harness::<Hash>::new("eject = true", THREE).expect("config");
        let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
        let before = h.forwarded_children(&keys);
        h.set_healthy(0, false);
        for (b, a) in before.iter().zip(h.forwarded_children(&keys)) {
            if *b == 0 {
                assert_ne!(a, 0);
            } else {
                assert_eq!(*b, a);
            }
        }
        let moved = before.iter().filter(|&&b| b == 0).count() as u64;
        assert!(moved > 0);
        assert_eq!(h.counter("ejected"), moved);
    }
}
