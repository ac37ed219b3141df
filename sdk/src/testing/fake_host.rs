//! The native stand-in for the host imports: per-thread state that a
//! [`Harness`](super::Harness) installs around each call into the policy.

use std::cell::RefCell;

use crate::host::Level;

/// What the imports see: the children, their health, the clock, the generator, the log.
#[derive(Debug, Default)]
pub(crate) struct FakeHost {
    pub(crate) children: Vec<(String, u32)>,
    pub(crate) healthy: Vec<bool>,
    pub(crate) now_ms: u64,
    pub(crate) random_state: u64,
    pub(crate) logs: Vec<(Level, String)>,
    pub(crate) identity: Option<String>,
    /// Whether `init` is running: metrics are defined only then.
    pub(crate) in_init: bool,
    /// The counters defined, in id order, with their values.
    pub(crate) counters: Vec<(String, u64)>,
    /// The histograms defined, in id order, with every value recorded.
    pub(crate) histograms: Vec<(String, Vec<u64>)>,
}

impl FakeHost {
    pub(crate) fn new(children: &[(&str, u32)]) -> Self {
        Self {
            children: children
                .iter()
                .map(|&(name, weight)| (name.to_owned(), weight))
                .collect(),
            healthy: vec![true; children.len()],
            ..Self::default()
        }
    }

    fn check(&self, import: &str, idx: u32) -> usize {
        let idx = idx as usize;
        assert!(
            idx < self.children.len(),
            "{import}({idx}): no such child (the node has {}); the host traps",
            self.children.len()
        );
        idx
    }
}

thread_local! {
    static CURRENT: RefCell<Option<FakeHost>> = const { RefCell::new(None) };
}

/// Runs `f` with `host` serving the imports on this thread.
pub(crate) fn enter<R>(host: &mut FakeHost, f: impl FnOnce() -> R) -> R {
    /// Puts the host back even if `f` panics.
    struct Restore<'h> {
        host: &'h mut FakeHost,
        previous: Option<FakeHost>,
    }
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let previous = self.previous.take();
            if let Some(host) =
                CURRENT.with_borrow_mut(|current| std::mem::replace(current, previous))
            {
                *self.host = host;
            }
        }
    }
    let previous = CURRENT.with_borrow_mut(|current| current.replace(std::mem::take(host)));
    let _restore = Restore { host, previous };
    f()
}

fn with<R>(import: &str, f: impl FnOnce(&mut FakeHost) -> R) -> R {
    CURRENT.with_borrow_mut(|current| match current {
        Some(host) => f(host),
        None => panic!(
            "switchyard_sdk::host::{import} called natively outside switchyard_sdk::testing::Harness"
        ),
    })
}

pub(crate) fn child_count() -> u32 {
    with("child_count", |host| host.children.len() as u32)
}

pub(crate) fn child_name(idx: u32) -> String {
    with("child_name", |host| {
        let idx = host.check("child_name", idx);
        host.children[idx].0.clone()
    })
}

pub(crate) fn child_weight(idx: u32) -> u32 {
    with("child_weight", |host| {
        let idx = host.check("child_weight", idx);
        host.children[idx].1
    })
}

pub(crate) fn child_healthy(idx: u32) -> bool {
    with("child_healthy", |host| {
        let idx = host.check("child_healthy", idx);
        host.healthy[idx]
    })
}

/// splitmix64: deterministic, so tests can predict it from the seed.
pub(crate) fn random() -> u64 {
    with("random", |host| {
        host.random_state = host.random_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = host.random_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

pub(crate) fn client_identity() -> Option<String> {
    with("client_identity", |host| host.identity.clone())
}

pub(crate) fn now_ms() -> u64 {
    with("now_ms", |host| host.now_ms)
}

pub(crate) fn log(level: u32, message: &str) {
    with("log", |host| {
        let level = Level::from_code(level).unwrap_or(Level::Error);
        host.logs.push((level, message.to_owned()));
    });
}

/// The checks and numbering of the host's `metric_define` (ABI.md, "Plugin metrics").
pub(crate) fn metric_define(kind: u32, name: &str) -> i32 {
    use crate::abi::{metric_define as result, metric_kind};
    with("metric_define", |host| {
        if !host.in_init {
            return result::NOT_IN_INIT;
        }
        if !result::valid_name(name.as_bytes()) {
            return result::BAD_NAME;
        }
        let counter = host.counters.iter().position(|(n, _)| n == name);
        let histogram = host.histograms.iter().position(|(n, _)| n == name);
        let (mine, other, len, max) = match kind {
            metric_kind::COUNTER => (
                counter,
                histogram,
                host.counters.len(),
                result::MAX_COUNTERS,
            ),
            metric_kind::HISTOGRAM => (
                histogram,
                counter,
                host.histograms.len(),
                result::MAX_HISTOGRAMS,
            ),
            _ => return result::BAD_KIND,
        };
        if let Some(id) = mine {
            return id as i32;
        }
        if other.is_some() {
            return result::OTHER_KIND;
        }
        if len >= max {
            return result::TOO_MANY;
        }
        if kind == metric_kind::COUNTER {
            host.counters.push((name.to_owned(), 0));
        } else {
            host.histograms.push((name.to_owned(), Vec::new()));
        }
        len as i32
    })
}

pub(crate) fn counter_add(id: u32, delta: u64) {
    with("counter_add", |host| {
        match host.counters.get_mut(id as usize) {
            Some((_, value)) => *value = value.wrapping_add(delta),
            None => panic!("counter_add({id}): no such counter; the host traps"),
        }
    });
}

pub(crate) fn histogram_record(id: u32, value: u64) {
    with("histogram_record", |host| {
        match host.histograms.get_mut(id as usize) {
            Some((_, values)) => values.push(value),
            None => panic!("histogram_record({id}): no such histogram; the host traps"),
        }
    });
}
