//! Metrics a plugin defines and moves: [`Counter`]s and [`Histogram`]s, shown per node in the
//! router's `stats plugins` and `/metrics` (see ABI.md, "Plugin metrics"), and in the
//! [`Harness`](crate::testing::Harness) as [`counter`](crate::testing::Harness::counter) and
//! [`histogram`](crate::testing::Harness::histogram).
//!
//! Define them in [`Policy::init`](crate::Policy::init) and keep the handles in the policy:
//!
//! ```
//! use switchyard_sdk::metrics::{Counter, Histogram};
//! use switchyard_sdk::{InitContext, NoConfig, Plan, Policy, Request, Reply};
//!
//! struct Counting {
//!     misses: Counter,
//!     key_bytes: Histogram,
//! }
//!
//! impl Policy for Counting {
//!     type Config = NoConfig;
//!     fn init(_: NoConfig, _: &InitContext) -> Result<Self, String> {
//!         Ok(Counting {
//!             misses: Counter::define("misses")?,
//!             key_bytes: Histogram::define("key_bytes")?,
//!         })
//!     }
//!     fn route<'a>(&'a mut self, request: &Request<'_>) -> Plan<'a> {
//!         self.misses.increment();
//!         self.key_bytes.record(request.key().len() as u64);
//!         Plan::Reply(Reply::Miss)
//!     }
//! }
//!
//! let mut harness = switchyard_sdk::testing::Harness::<Counting>::new("", &[]).unwrap();
//! harness.route(&Request::new(switchyard_sdk::Op::Get, b"user:1"));
//! assert_eq!(harness.counter("misses"), 1);
//! assert_eq!(harness.histogram("key_bytes"), [6]);
//! ```
//!
//! A bump is one call into the host and one uncontended atomic add there: cheap enough for
//! every request.

use crate::abi::{metric_define, metric_kind};

#[cfg(target_arch = "wasm32")]
use crate::sys as backend;
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::fake_host as backend;

/// A count that only goes up, defined by [`Counter::define`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Counter(u32);

/// A distribution of values (sizes, counts, times), defined by [`Histogram::define`]. The
/// router keeps it in buckets exact up to 16 and eight per power of two above, and reports its
/// count, sum, mean, median and 99th percentile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Histogram(u32);

/// Asks the host for the id of a metric; the error names the metric and what is wrong.
fn define(kind: u32, what: &str, name: &str) -> Result<u32, String> {
    let id = backend::metric_define(kind, name);
    u32::try_from(id).map_err(|_| {
        format!(
            "cannot define {what} `{name}`: {}",
            metric_define::describe(id)
        )
    })
}

impl Counter {
    /// Defines the node's counter `name` (1 to 64 bytes of `a`-`z`, `0`-`9` and `_`, no
    /// leading digit), or finds it if defined already. Only during [`Policy::init`]
    /// (crate::Policy::init); a node may have 64 counters.
    pub fn define(name: &str) -> Result<Counter, String> {
        define(metric_kind::COUNTER, "counter", name).map(Counter)
    }

    /// Adds `delta`.
    pub fn add(self, delta: u64) {
        backend::counter_add(self.0, delta);
    }

    /// Adds 1.
    pub fn increment(self) {
        self.add(1);
    }
}

impl Histogram {
    /// Defines the node's histogram `name` (the rules of [`Counter::define`]); a node may have
    /// 8 histograms.
    pub fn define(name: &str) -> Result<Histogram, String> {
        define(metric_kind::HISTOGRAM, "histogram", name).map(Histogram)
    }

    /// Records one value.
    pub fn record(self, value: u64) {
        backend::histogram_record(self.0, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Harness;
    use crate::{InitContext, Op, Plan, Policy, Reply, Request};

    /// Defines the counters and histograms its config names; counts each request under the
    /// counter named by its key, and tries to define one in `route` when the key is `late`.
    struct Definer {
        counters: Vec<(String, Counter)>,
        sizes: Option<Histogram>,
        late: Option<Result<Counter, String>>,
    }

    #[derive(serde::Deserialize)]
    struct DefinerConfig {
        counters: Vec<String>,
        #[serde(default)]
        histograms: Vec<String>,
    }

    impl Policy for Definer {
        type Config = DefinerConfig;
        fn init(config: DefinerConfig, _: &InitContext) -> Result<Self, String> {
            let counters = config
                .counters
                .into_iter()
                .map(|name| Counter::define(&name).map(|c| (name, c)))
                .collect::<Result<_, _>>()?;
            let histograms = config
                .histograms
                .iter()
                .map(|name| Histogram::define(name))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Definer {
                counters,
                sizes: histograms.first().copied(),
                late: None,
            })
        }
        fn route<'a>(&'a mut self, request: &Request<'_>) -> Plan<'a> {
            if request.key() == b"late" {
                self.late = Some(Counter::define("late"));
            }
            for (name, counter) in &self.counters {
                if name.as_bytes() == request.key() {
                    counter.add(2);
                }
            }
            if let Some(sizes) = self.sizes {
                sizes.record(request.key().len() as u64);
            }
            Plan::Reply(Reply::Miss)
        }
    }

    fn harness(config: &str) -> Result<Harness<Definer>, String> {
        Harness::new(config, &[])
    }

    #[test]
    fn counters_and_histograms_move() {
        let mut h =
            harness("counters = [\"a\", \"b\", \"a\"]\nhistograms = [\"sizes\"]").expect("defined");
        for key in ["a", "b", "a", "zzz"] {
            h.route(&Request::new(Op::Get, key.as_bytes()));
        }
        // `a` is defined twice: both handles are the one counter, and both move it.
        assert_eq!(h.counter("a"), 8);
        assert_eq!(h.counter("b"), 2);
        assert_eq!(h.histogram("sizes"), [1, 1, 1, 3]);
    }

    #[test]
    fn definitions_the_host_refuses_fail_init_with_the_reason() {
        for (config, expected) in [
            (
                "counters = [\"Hits\"]",
                "cannot define counter `Hits`: a metric name is",
            ),
            ("counters = [\"9lives\"]", "not starting with a digit"),
            ("counters = [\"\"]", "cannot define counter ``"),
            (
                "counters = [\"x\"]\nhistograms = [\"x\"]",
                "cannot define histogram `x`: the name is taken by a metric of the other kind",
            ),
        ] {
            let err = harness(config).err().unwrap_or_default();
            assert!(err.contains(expected), "{config}: {err}");
        }
        let long = "n".repeat(65);
        let err = harness(&format!("counters = [\"{long}\"]")).err();
        assert!(err.is_some_and(|e| e.contains("1 to 64 bytes")));
        assert!(harness(&format!("counters = [\"{}\"]", "n".repeat(64))).is_ok());

        let many: Vec<String> = (0..65).map(|i| format!("\"c{i}\"")).collect();
        let err = harness(&format!("counters = [{}]", many.join(","))).err();
        assert!(err.is_some_and(|e| e.contains("at most 64 counters")));
        let many: Vec<String> = (0..9).map(|i| format!("\"h{i}\"")).collect();
        let err = harness(&format!("counters = []\nhistograms = [{}]", many.join(","))).err();
        assert!(err.is_some_and(|e| e.contains("8 histograms")));
    }

    #[test]
    fn defining_outside_init_is_refused() {
        let mut h = harness("counters = []").expect("defined");
        h.route(&Request::new(Op::Get, b"late"));
        let late = h.policy().late.clone().expect("route tried");
        assert_eq!(
            late.err().as_deref(),
            Some("cannot define counter `late`: metrics are defined during init")
        );
    }

    #[test]
    #[should_panic(expected = "no counter `nope`; the policy defined [\"a\"]")]
    fn the_harness_names_what_was_defined() {
        harness("counters = [\"a\"]")
            .expect("valid")
            .counter("nope");
    }
}
