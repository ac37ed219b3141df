//! Native test harness: run a [`Policy`] with plain `cargo test`, against a fake host whose
//! children, health, clock and random generator the test controls.
//!
//! The harness goes through the same code as a wasm plugin wherever that is cheap: the config
//! is parsed from TOML text, the request is rebuilt from the `route` (or `on_reply`) arguments
//! with the key copied into a key buffer, and the plan is encoded into a plan buffer and decoded
//! back with the checks a version 1 host applies ([`decode_plan`]), so a test also covers the
//! encoding.
//!
//! A [`Plan::Call`](crate::Plan::Call) is a [`Decision::Call`]; the test plays the child's
//! reply by calling [`Harness::on_reply`] with the cookie and a status.
//!
//! ```
//! use switchyard_sdk::testing::{Decision, Harness};
//! use switchyard_sdk::{Child, InitContext, NoConfig, Op, Plan, Policy, Request};
//!
//! struct First;
//! impl Policy for First {
//!     type Config = NoConfig;
//!     fn init(_: NoConfig, _: &InitContext) -> Result<Self, String> {
//!         Ok(First)
//!     }
//!     fn route<'a>(&'a mut self, _: &Request<'_>) -> Plan<'a> {
//!         Plan::Forward(Child(0))
//!     }
//! }
//!
//! let mut harness = Harness::<First>::new("", &[("a", 1), ("b", 1)]).expect("valid config");
//! assert_eq!(harness.route(&Request::new(Op::Get, b"k")), Decision::Forward(0));
//! ```

pub(crate) mod fake_host;

use std::fmt;

use self::fake_host::FakeHost;
use crate::abi::{KEY_CAPACITY, PLAN_CAPACITY};
pub use crate::decision::{
    Decision, OwnedBackground, OwnedReply, OwnedRewrite, PlanFault, decode_plan,
};
use crate::export::__private::{self, Instance};
use crate::host::Level;
use crate::policy::Policy;
use crate::request::{Op, Request};
use crate::status::ReplyStatus;

/// Every operation that fetches a value ([`Op::fetches_value`]), with a code the SDK does not
/// know among them: what a read-through policy's tests send as reads.
pub const FETCHING_OPS: [Op; 6] = [
    Op::Get,
    Op::Gets,
    Op::Gat,
    Op::Gats,
    Op::MetaGet,
    Op::Other(30),
];

/// Every other operation the ABI names.
pub const OTHER_OPS: [Op; 14] = [
    Op::Set,
    Op::Add,
    Op::Replace,
    Op::Append,
    Op::Prepend,
    Op::Cas,
    Op::Delete,
    Op::Incr,
    Op::Decr,
    Op::Touch,
    Op::MetaSet,
    Op::MetaDelete,
    Op::MetaArithmetic,
    Op::MetaDebug,
];

/// Byte the plan buffer is filled with before each call, so a plan that reads bytes the
/// policy did not write is noticed.
const POISON: u8 = 0xa5;

/// A configured policy on a fake host.
pub struct Harness<P: Policy> {
    instance: Instance<P>,
    host: FakeHost,
    key: Box<[u8; KEY_CAPACITY]>,
    plan: Box<[u8; PLAN_CAPACITY]>,
}

impl<P: Policy> fmt::Debug for Harness<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Harness")
            .field("children", &self.host.children)
            .field("healthy", &self.host.healthy)
            .field("now_ms", &self.host.now_ms)
            .finish_non_exhaustive()
    }
}

impl<P: Policy> Harness<P> {
    /// Configures the policy as a host would: `config_toml` is the node's `config` table as
    /// TOML text (`""` for none), `children` the `(name, weight)` of each child. Every child
    /// starts healthy, the clock at 0 and the generator at seed 0.
    ///
    /// The error is the reason the plugin would pass to `set_error`.
    pub fn new(config_toml: &str, children: &[(&str, u32)]) -> Result<Self, String> {
        let mut host = FakeHost::new(children);
        host.in_init = true;
        let instance = fake_host::enter(&mut host, || {
            Instance::<P>::configure(config_toml.as_bytes())
        })?;
        host.in_init = false;
        Ok(Self {
            instance,
            host,
            key: Box::new([0; KEY_CAPACITY]),
            plan: Box::new([POISON; PLAN_CAPACITY]),
        })
    }

    /// [`Harness::new`] with one child per weight, named `c0`, `c1`, ... in index order: for
    /// policies that place keys by the children's count or weights, not their names.
    pub fn with_weights(config_toml: &str, weights: &[u32]) -> Result<Self, String> {
        let names: Vec<String> = (0..weights.len()).map(|idx| format!("c{idx}")).collect();
        let children: Vec<(&str, u32)> = names
            .iter()
            .zip(weights)
            .map(|(name, &weight)| (name.as_str(), weight))
            .collect();
        Self::new(config_toml, &children)
    }

    /// Routes one request that the policy forwards, and returns the child index.
    ///
    /// # Panics
    ///
    /// If the plan is not a [`Decision::Forward`], and as [`Harness::route`] does.
    pub fn forwarded(&mut self, request: &Request<'_>) -> u32 {
        match self.route(request) {
            Decision::Forward(child) => child,
            other => panic!("expected a forward, got {other:?}"),
        }
    }

    /// Routes a `get` of each key, which the policy forwards, and returns the child index of
    /// each, in key order: where a key-placing policy puts these keys.
    ///
    /// # Panics
    ///
    /// As [`Harness::forwarded`] does.
    pub fn forwarded_children<K: AsRef<[u8]>>(
        &mut self,
        keys: impl IntoIterator<Item = K>,
    ) -> Vec<u32> {
        keys.into_iter()
            .map(|key| self.forwarded(&Request::new(Op::Get, key.as_ref())))
            .collect()
    }

    /// Routes one request and decodes the plan.
    ///
    /// # Panics
    ///
    /// If the host would refuse the plan (a plugin fault), or the key is longer than
    /// [`KEY_CAPACITY`] (the host never passes one).
    pub fn route(&mut self, request: &Request<'_>) -> Decision {
        match self.try_route(request) {
            Ok(decision) => decision,
            Err(fault) => panic!("plugin fault: {fault}"),
        }
    }

    /// Routes one request; a plan the host would refuse is an error (including
    /// [`Decision::Pass`], which only `on_reply` may return).
    ///
    /// # Panics
    ///
    /// If the key is longer than [`KEY_CAPACITY`].
    pub fn try_route(&mut self, request: &Request<'_>) -> Result<Decision, PlanFault> {
        let key_len = self.copy_key(request);
        self.plan.fill(POISON);
        let request = __private::request(
            request.op().code() as i32,
            &self.key[..key_len],
            request.flags() as i32,
            request.exptime(),
            request.value_len() as i32,
            request.listener() as i32,
        );
        let (instance, plan) = (&mut self.instance, &mut self.plan);
        let word = fake_host::enter(&mut self.host, || instance.route(&request, plan));
        decode_plan(word, &self.plan[..], self.instance.child_count)
            .and_then(crate::decision::check_route_decision)
    }

    /// Continues a [`Decision::Call`]: the child answered `status`, and the host hands back
    /// `cookie`. As the host does, only the request's operation and key reach the policy (its
    /// flags, exptime, value length and listener are 0 there).
    ///
    /// The harness does not remember calls: the test chains them, passing each
    /// [`Decision::Call`]'s cookie back, and counts them against
    /// [`MAX_CALLS`](crate::abi::MAX_CALLS) if it needs to.
    ///
    /// # Panics
    ///
    /// If the host would refuse the plan (a plugin fault), or the key is longer than
    /// [`KEY_CAPACITY`].
    pub fn on_reply(
        &mut self,
        cookie: u32,
        status: ReplyStatus,
        request: &Request<'_>,
    ) -> Decision {
        match self.try_on_reply(cookie, status, request) {
            Ok(decision) => decision,
            Err(fault) => panic!("plugin fault: {fault}"),
        }
    }

    /// [`Harness::on_reply`], with a plan the host would refuse as an error.
    ///
    /// # Panics
    ///
    /// If the key is longer than [`KEY_CAPACITY`].
    pub fn try_on_reply(
        &mut self,
        cookie: u32,
        status: ReplyStatus,
        request: &Request<'_>,
    ) -> Result<Decision, PlanFault> {
        let key_len = self.copy_key(request);
        self.plan.fill(POISON);
        let request = __private::reply_request(request.op().code() as i32, &self.key[..key_len]);
        let (instance, plan) = (&mut self.instance, &mut self.plan);
        let word = fake_host::enter(&mut self.host, || {
            instance.on_reply(cookie, status, &request, plan)
        });
        decode_plan(word, &self.plan[..], self.instance.child_count)
    }

    /// Copies the request's key into the key buffer, as the host does; returns its length.
    fn copy_key(&mut self, request: &Request<'_>) -> usize {
        let key_len = request.key().len();
        assert!(
            key_len <= KEY_CAPACITY,
            "keys longer than {KEY_CAPACITY} bytes never reach a plugin"
        );
        self.key[..key_len].copy_from_slice(request.key());
        key_len
    }

    /// Marks a child up or down, as `child_healthy` will report it.
    ///
    /// # Panics
    ///
    /// If there is no such child.
    pub fn set_healthy(&mut self, child: u32, healthy: bool) {
        let count = self.host.healthy.len();
        match self.host.healthy.get_mut(child as usize) {
            Some(slot) => *slot = healthy,
            None => panic!("no child {child}: the node has {count}"),
        }
    }

    /// Sets the identity of the client whose requests follow, as
    /// [`host::client_identity`](crate::host::client_identity) will report it (`None`: a client
    /// without a certificate).
    pub fn set_client_identity(&mut self, identity: Option<&str>) {
        self.host.identity = identity.map(str::to_owned);
    }

    /// Sets what `now_ms` returns.
    pub fn set_now_ms(&mut self, now_ms: u64) {
        self.host.now_ms = now_ms;
    }

    /// Restarts the `random` sequence from `seed` (a splitmix64 generator).
    pub fn seed_random(&mut self, seed: u64) {
        self.host.random_state = seed;
    }

    /// The messages the policy logged so far.
    pub fn logs(&self) -> &[(Level, String)] {
        &self.host.logs
    }

    /// Takes the messages the policy logged so far.
    pub fn take_logs(&mut self) -> Vec<(Level, String)> {
        std::mem::take(&mut self.host.logs)
    }

    /// The value of the counter the policy defined as `name`
    /// ([`Counter::define`](crate::metrics::Counter::define)).
    ///
    /// # Panics
    ///
    /// If the policy defined no counter `name`.
    pub fn counter(&self, name: &str) -> u64 {
        match self.host.counters.iter().find(|(n, _)| n == name) {
            Some((_, value)) => *value,
            None => panic!(
                "no counter `{name}`; the policy defined {:?}",
                self.host
                    .counters
                    .iter()
                    .map(|(n, _)| n)
                    .collect::<Vec<_>>()
            ),
        }
    }

    /// Every value recorded in the histogram the policy defined as `name`
    /// ([`Histogram::define`](crate::metrics::Histogram::define)), in order.
    ///
    /// # Panics
    ///
    /// If the policy defined no histogram `name`.
    pub fn histogram(&self, name: &str) -> &[u64] {
        match self.host.histograms.iter().find(|(n, _)| n == name) {
            Some((_, values)) => values,
            None => panic!(
                "no histogram `{name}`; the policy defined {:?}",
                self.host
                    .histograms
                    .iter()
                    .map(|(n, _)| n)
                    .collect::<Vec<_>>()
            ),
        }
    }

    /// The policy, to inspect its state.
    pub fn policy(&self) -> &P {
        &self.instance.policy
    }

    /// Number of children.
    pub fn child_count(&self) -> u32 {
        self.instance.child_count
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::host;
    use crate::plan::{Child, Children, Plan, Reply, Wait};
    use crate::policy::InitContext;
    use crate::request::Op;

    #[test]
    fn the_op_tables_split_every_known_code_by_fetches_value() {
        assert!(FETCHING_OPS.iter().all(|op| op.fetches_value()));
        assert!(OTHER_OPS.iter().all(|op| !op.fetches_value()));
        let mut known: Vec<u32> = FETCHING_OPS
            .iter()
            .chain(&OTHER_OPS)
            .map(|op| op.code())
            .filter(|&code| code != 30)
            .collect();
        known.sort_unstable();
        assert_eq!(known, (1..=19).collect::<Vec<u32>>());
    }

    /// A policy that exercises every plan and every import.
    struct Probe {
        message: String,
        spread: Vec<u32>,
        /// What the last `on_reply` saw, for `Reply::ServerError(&self.seen)`.
        seen: String,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ProbeConfig {
        message: String,
        #[serde(default)]
        refuse: bool,
    }

    impl Policy for Probe {
        type Config = ProbeConfig;

        fn init(config: ProbeConfig, ctx: &InitContext) -> Result<Self, String> {
            if config.refuse {
                return Err(format!("refused with {} children", ctx.child_count()));
            }
            host::log(Level::Info, "init");
            Ok(Probe {
                message: config.message,
                spread: ctx.iter().map(|(child, _)| child.0).rev().collect(),
                seen: String::new(),
            })
        }

        fn route<'a>(&'a mut self, request: &Request<'_>) -> Plan<'a> {
            match request.key() {
                b"reply" => Plan::Reply(Reply::ServerError(&self.message)),
                b"all" => Plan::FanOut {
                    children: Children::All,
                    wait: Wait::All,
                },
                b"spread" => Plan::FanOut {
                    children: Children::List(&self.spread),
                    wait: Wait::All,
                },
                b"bad" => Plan::Forward(Child(99)),
                b"empty" => Plan::FanOut {
                    children: Children::List(&[]),
                    wait: Wait::All,
                },
                b"health" => Plan::Forward(Child(u32::from(!host::child_healthy(Child(0))))),
                b"clock" => Plan::Forward(Child((host::now_ms() % 3) as u32)),
                b"random" => Plan::Forward(Child((host::random() % 3) as u32)),
                b"call" => Plan::Call {
                    child: Child(2),
                    cookie: 0xfeed_f00d,
                },
                b"pass" => Plan::Pass,
                _ => {
                    let idx = host::hash(crate::HashAlgorithm::Crc32, request.key());
                    Plan::Forward(Child(idx % 3))
                }
            }
        }

        fn on_reply<'a>(
            &'a mut self,
            cookie: u32,
            status: ReplyStatus,
            request: &Request<'_>,
        ) -> Plan<'a> {
            match status {
                ReplyStatus::ServerError => Plan::Call {
                    child: Child(cookie),
                    cookie: cookie + 1,
                },
                ReplyStatus::Miss => Plan::Forward(Child(0)),
                ReplyStatus::Error => Plan::Forward(Child(cookie)),
                ReplyStatus::Other(_) => {
                    self.seen = format!(
                        "{cookie} {status} {:?} {} {} {} {} {} healthy={}",
                        request.op(),
                        String::from_utf8_lossy(request.key()),
                        request.flags(),
                        request.exptime(),
                        request.value_len(),
                        request.listener(),
                        host::child_healthy(Child(1)),
                    );
                    Plan::Reply(Reply::ServerError(&self.seen))
                }
                _ => Plan::Pass,
            }
        }
    }

    /// A policy that keeps the default `on_reply`.
    struct CallOnly;

    impl Policy for CallOnly {
        type Config = crate::NoConfig;

        fn init(_: crate::NoConfig, _: &InitContext) -> Result<Self, String> {
            Ok(CallOnly)
        }

        fn route<'a>(&'a mut self, _: &Request<'_>) -> Plan<'a> {
            Plan::Call {
                child: Child(0),
                cookie: 0,
            }
        }
    }

    const CHILDREN: &[(&str, u32)] = &[("a", 1), ("b", 2), ("c", 3)];

    fn probe() -> Harness<Probe> {
        Harness::new("message = \"sorry\"", CHILDREN).expect("valid config")
    }

    fn get(key: &[u8]) -> Request<'_> {
        Request::new(Op::Get, key)
    }

    #[test]
    fn decisions() {
        let mut h = probe();
        assert_eq!(
            h.route(&get(b"reply")),
            Decision::reply(Reply::ServerError("sorry"))
        );
        assert_eq!(
            h.route(&get(b"all")),
            Decision::FanOut {
                children: vec![0, 1, 2],
                wait: Wait::All
            }
        );
        assert_eq!(
            h.route(&get(b"spread")),
            Decision::FanOut {
                children: vec![2, 1, 0],
                wait: Wait::All
            }
        );
        let crc = crate::hash::crc32(b"k") % 3;
        assert_eq!(h.route(&get(b"k")), Decision::Forward(crc));
        assert_eq!(h.logs(), [(Level::Info, "init".to_owned())]);
        assert_eq!(h.take_logs().len(), 1);
        assert!(h.logs().is_empty());
    }

    #[test]
    fn forwarded_children() {
        let mut h =
            Harness::<Probe>::with_weights("message = \"m\"", &[1, 2, 3]).expect("valid config");
        let keys = ["k", "other", "health"];
        let expected: Vec<u32> = keys
            .iter()
            .map(|key| match h.route(&get(key.as_bytes())) {
                Decision::Forward(child) => child,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(h.forwarded_children(keys), expected);
        assert_eq!(h.forwarded(&get(b"health")), 0);
        assert_eq!(h.policy().spread, [2, 1, 0]);
        assert!(format!("{h:?}").contains(r#"("c2", 3)"#), "{h:?}");
    }

    #[test]
    #[should_panic(expected = "expected a forward, got Reply(ServerError(\"sorry\"))")]
    fn forwarded_panics_on_other_plans() {
        probe().forwarded(&get(b"reply"));
    }

    #[test]
    fn faults() {
        let mut h = probe();
        let fault = h.try_route(&get(b"bad")).expect_err("out of range");
        assert!(fault.message().contains("child 99"), "{fault}");
        let fault = h.try_route(&get(b"empty")).expect_err("empty fan-out");
        assert!(fault.message().contains("no children"), "{fault}");
    }

    #[test]
    #[should_panic(expected = "plugin fault")]
    fn route_panics_on_fault() {
        probe().route(&get(b"bad"));
    }

    #[test]
    fn calls_and_replies() {
        let mut h = probe();
        assert_eq!(
            h.route(&get(b"call")),
            Decision::Call {
                child: 2,
                cookie: 0xfeed_f00d
            }
        );
        let request = get(b"k");
        let chain: Vec<_> = (0..3)
            .map(|cookie| h.on_reply(cookie, ReplyStatus::ServerError, &request))
            .collect();
        assert_eq!(
            chain,
            [0, 1, 2].map(|child| Decision::Call {
                child,
                cookie: child + 1
            })
        );
        assert_eq!(
            h.on_reply(0, ReplyStatus::Miss, &request),
            Decision::Forward(0)
        );
        assert_eq!(h.on_reply(0, ReplyStatus::Hit, &request), Decision::Pass);
        assert_eq!(h.on_reply(5, ReplyStatus::Stored, &request), Decision::Pass);
    }

    #[test]
    fn on_reply_sees_op_and_key_only() {
        let mut h = probe();
        h.set_healthy(1, false);
        let set = Request::new(Op::Set, b"the-key")
            .with_flags(7)
            .with_exptime(60)
            .with_value_len(3)
            .with_listener(1);
        assert_eq!(
            h.on_reply(9, ReplyStatus::Other(77), &set),
            Decision::reply(Reply::ServerError(
                "9 status 77 Set the-key 0 0 0 0 healthy=false"
            ))
        );
    }

    #[test]
    fn on_reply_faults() {
        let mut h = probe();
        let fault = h
            .try_on_reply(3, ReplyStatus::ServerError, &get(b"k"))
            .expect_err("call to child 3");
        assert!(fault.message().contains("child 3"), "{fault}");
        let fault = h
            .try_on_reply(3, ReplyStatus::Error, &get(b"k"))
            .expect_err("forward to child 3");
        assert!(fault.message().contains("out of range"), "{fault}");
        let fault = h.try_route(&get(b"pass")).expect_err("pass from route");
        assert!(fault.message().contains("pass from route"), "{fault}");
    }

    #[test]
    #[should_panic(expected = "plugin fault")]
    fn on_reply_panics_on_fault() {
        probe().on_reply(3, ReplyStatus::ServerError, &get(b"k"));
    }

    #[test]
    fn default_on_reply_passes() {
        let mut h = Harness::<CallOnly>::new("", CHILDREN).expect("valid config");
        assert_eq!(
            h.route(&get(b"k")),
            Decision::Call {
                child: 0,
                cookie: 0
            }
        );
        for code in 0..15 {
            let status = ReplyStatus::from_code(code);
            assert_eq!(h.on_reply(0, status, &get(b"k")), Decision::Pass);
        }
    }

    #[test]
    fn host_state() {
        let mut h = probe();
        assert_eq!(h.route(&get(b"health")), Decision::Forward(0));
        h.set_healthy(0, false);
        assert_eq!(h.route(&get(b"health")), Decision::Forward(1));
        h.set_now_ms(5);
        assert_eq!(h.route(&get(b"clock")), Decision::Forward(2));

        h.seed_random(42);
        let first: Vec<_> = (0..8).map(|_| h.route(&get(b"random"))).collect();
        h.seed_random(42);
        let again: Vec<_> = (0..8).map(|_| h.route(&get(b"random"))).collect();
        assert_eq!(first, again);
    }

    #[test]
    fn two_harnesses_on_one_thread_stay_apart() {
        let mut one = probe();
        let mut two = probe();
        one.set_healthy(0, false);
        assert_eq!(one.route(&get(b"health")), Decision::Forward(1));
        assert_eq!(two.route(&get(b"health")), Decision::Forward(0));
    }

    #[test]
    fn config_errors() {
        let err = Harness::<Probe>::new("", CHILDREN).expect_err("missing field");
        assert!(err.contains("missing field `message`"), "{err}");
        let err = Harness::<Probe>::new("message = \"x\"\ncolour = 1", CHILDREN)
            .expect_err("unknown field");
        assert!(err.contains("unknown field `colour`"), "{err}");
        let err = Harness::<Probe>::new("message = ", CHILDREN).expect_err("bad TOML");
        assert!(err.starts_with("invalid config: "), "{err}");
        let err =
            Harness::<Probe>::new("message = \"x\"\nrefuse = true", CHILDREN).expect_err("refused");
        assert_eq!(err, "refused with 3 children");
    }

    #[test]
    #[should_panic(expected = "outside switchyard_sdk::testing::Harness")]
    fn imports_need_a_harness() {
        host::now_ms();
    }

    #[test]
    fn hashes_work_without_a_harness() {
        assert_eq!(host::md5(b""), crate::hash::md5(b""));
    }
}
