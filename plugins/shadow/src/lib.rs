//! Serves every request from `main` and sends a copy of some of them to shadow children in
//! the background, comparing their replies with `main`'s: for trying out a new pool or server
//! build on real traffic without the clients noticing. See `README.md`.
//!
//! Which requests are copied: those whose key falls in `key_range` (by the key's MD5, so the
//! same keys are always in), and of those a `rate` fraction drawn at random per request. The
//! background sends are built once at init, so `route` returns a borrowed plan without
//! allocating.

use serde::Deserialize;
use switchyard_sdk::abi::MAX_BACKGROUND;
use switchyard_sdk::{Background, Child, HashAlgorithm, InitContext, Plan, Policy, Request, host};

/// Size of the space key hashes fall in (`u32`): a key's point is its hash over this.
const HASH_SPACE: f64 = 4_294_967_296.0;

/// Size of the space the host's random draws fall in (`u64`).
const RANDOM_SPACE: f64 = 18_446_744_073_709_551_616.0;

/// The `config` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The child that serves every request; default the first child.
    #[serde(default)]
    pub main: Option<String>,
    /// The children that get the copies (1 to [`MAX_BACKGROUND`], not `main`); default every
    /// child but `main`.
    #[serde(default)]
    pub shadows: Option<Vec<String>>,
    /// `[start, end]`: the keys whose point (MD5 over the `u32` space, in `[0, 1)`) lies in
    /// `[start, end)` are copied; default `[0.0, 1.0]`, every key.
    #[serde(default)]
    pub key_range: Option<Vec<f64>>,
    /// The fraction of those requests copied, drawn per request; default 1.0, all.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Compare each shadow's reply with `main`'s, and count mismatches; default `true`.
    #[serde(default = "default_compare")]
    pub compare: bool,
}

fn default_rate() -> f64 {
    1.0
}

fn default_compare() -> bool {
    true
}

/// The point of `key` in `[0, 2^32)`: the first four bytes of its MD5 digest, little-endian
/// (the host's `md5` hash, as libketama reads it). Divided by 2^32, it is the fraction that
/// `key_range` is compared with.
pub fn key_point(key: &[u8]) -> u32 {
    host::hash(HashAlgorithm::Md5, key)
}

/// The policy.
#[derive(Debug)]
pub struct Shadow {
    main: Child,
    /// A copy of the request to each shadow, compared or not.
    copies: Vec<Background<'static>>,
    /// `[low, high)`: the key points that are copied; `None` for every key (no hashing).
    key_points: Option<(u64, u64)>,
    /// A request in range is copied when the host's 64 random bits are below this; `None` for
    /// every request (no draw).
    rate_below: Option<u64>,
}

impl Shadow {
    /// The child that serves every request.
    pub fn main(&self) -> Child {
        self.main
    }

    /// The background sends of a copied request.
    pub fn copies(&self) -> &[Background<'static>] {
        &self.copies
    }

    /// Whether `key` is in `key_range`. The same for every request with that key, on every
    /// instance and router.
    pub fn in_key_range(&self, key: &[u8]) -> bool {
        self.key_points.is_none_or(|(low, high)| {
            let point = u64::from(key_point(key));
            low <= point && point < high
        })
    }

    /// Whether a request for `key` is copied this time: in range, and drawn by `rate`.
    fn sampled(&self, key: &[u8]) -> bool {
        self.in_key_range(key) && self.rate_below.is_none_or(|below| host::random() < below)
    }
}

/// `[start, end]` as the key points `[low, high)` a key's point must lie in; `None` when every
/// key is in. A point `p` is in when `start <= p / 2^32 < end`, that is `ceil(start * 2^32) <=
/// p < ceil(end * 2^32)` (the products are exact: 2^32 is a power of two).
fn key_points(range: &[f64]) -> Result<Option<(u64, u64)>, String> {
    let &[start, end] = range else {
        return Err(format!(
            "key_range has {} numbers; it takes two, [start, end], such as [0.0, 0.1]",
            range.len()
        ));
    };
    for (what, value) in [("start", start), ("end", end)] {
        if !(0.0..=1.0).contains(&value) {
            return Err(format!(
                "key_range {what} {value} is outside [0, 1]: it is a fraction of the key space"
            ));
        }
    }
    if start > end {
        return Err(format!(
            "key_range [{start}, {end}] starts after it ends; write [start, end] with start <= end"
        ));
    }
    // Within [0, 2^32], so the casts are exact.
    let low = (start * HASH_SPACE).ceil() as u64;
    let high = (end * HASH_SPACE).ceil() as u64;
    Ok((low != 0 || high != 1 << 32).then_some((low, high)))
}

/// `rate` as the bound the host's random draw must stay below; `None` when every request is
/// drawn.
fn rate_below(rate: f64) -> Result<Option<u64>, String> {
    if !(0.0..=1.0).contains(&rate) {
        return Err(format!(
            "rate {rate} is outside [0, 1]: it is the fraction of requests copied"
        ));
    }
    // Below 2^64 for a rate below 1 (the cast would saturate anyway).
    Ok((rate < 1.0).then_some((rate * RANDOM_SPACE) as u64))
}

/// The shadows, by name or by default (every child but `main`).
fn resolve_shadows(
    ctx: &InitContext,
    main: Child,
    names: Option<&[String]>,
) -> Result<Vec<Child>, String> {
    let main_name = ctx.child(main).map_or("", |info| info.name());
    let shadows = match names {
        None => {
            let others: Vec<Child> = ctx
                .iter()
                .map(|(child, _)| child)
                .filter(|&child| child != main)
                .collect();
            if others.is_empty() {
                return Err(format!(
                    "shadow needs a child besides main {main_name:?} to copy requests to; the \
                     node has only that one"
                ));
            }
            if others.len() > MAX_BACKGROUND {
                return Err(format!(
                    "shadows defaults to every child but main, {} children; a plan carries at \
                     most {MAX_BACKGROUND} background copies: list at most {MAX_BACKGROUND} in \
                     shadows",
                    others.len()
                ));
            }
            others
        }
        Some(names) => {
            if names.is_empty() {
                return Err(
                    "shadows is empty; name at least one child, or leave it out for every child \
                     but main"
                        .into(),
                );
            }
            if names.len() > MAX_BACKGROUND {
                return Err(format!(
                    "shadows names {} children; a plan carries at most {MAX_BACKGROUND} \
                     background copies",
                    names.len()
                ));
            }
            let mut shadows = Vec::with_capacity(names.len());
            for name in names {
                let child = ctx.resolve(name, "shadows names")?;
                if child == main {
                    return Err(format!(
                        "shadows names main {name:?}: main already serves every request"
                    ));
                }
                if shadows.contains(&child) {
                    return Err(format!("shadows names {name:?} twice"));
                }
                shadows.push(child);
            }
            shadows
        }
    };
    Ok(shadows)
}

impl Policy for Shadow {
    type Config = Config;

    fn init(config: Config, ctx: &InitContext) -> Result<Self, String> {
        if ctx.child_count() == 0 {
            return Err("shadow needs at least two children: main and a shadow".into());
        }
        let main = match &config.main {
            Some(name) => ctx.resolve(name, "main names")?,
            None => Child(0),
        };
        let shadows = resolve_shadows(ctx, main, config.shadows.as_deref())?;
        let key_points = match &config.key_range {
            Some(range) => key_points(range)?,
            None => None,
        };
        let rate_below = rate_below(config.rate)?;
        let copies = shadows
            .into_iter()
            .map(|child| {
                let copy = Background::copy(child);
                if config.compare {
                    copy.compared()
                } else {
                    copy
                }
            })
            .collect();
        Ok(Self {
            main,
            copies,
            key_points,
            rate_below,
        })
    }

    fn route<'a>(&'a mut self, request: &Request<'_>) -> Plan<'a> {
        let plan = Plan::Forward(self.main);
        if self.sampled(request.key()) {
            plan.with_background(&self.copies)
        } else {
            plan
        }
    }
}

switchyard_sdk::export_policy!(Shadow);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::{Decision, Harness, OwnedBackground, OwnedRewrite};
    use switchyard_sdk::{Op, Request};

    use super::*;

    const THREE: &[(&str, u32)] = &[("prod", 1), ("canary", 1), ("next", 1)];

    fn shadow(config: &str) -> Harness<Shadow> {
        Harness::new(config, THREE).expect("valid config")
    }

    fn copy(child: u32, compare: bool) -> OwnedBackground {
        OwnedBackground {
            child,
            store: None,
            compare,
            rewrite: OwnedRewrite::default(),
        }
    }

    fn get(key: &[u8]) -> Request<'_> {
        Request::new(Op::Get, key)
    }

    /// Whether the request was copied (a forward to `main` either way).
    fn copied(h: &mut Harness<Shadow>, request: &Request<'_>) -> bool {
        let decision = h.route(request);
        assert_eq!(decision.primary(), &Decision::Forward(h.policy().main().0));
        assert_eq!(decision.rewrite(), None);
        !decision.background().is_empty()
    }

    /// A key's point as a fraction, exactly.
    fn fraction(key: &[u8]) -> f64 {
        f64::from(key_point(key)) / HASH_SPACE
    }

    #[test]
    fn by_default_every_request_is_copied_to_every_other_child_and_compared() {
        let mut h = shadow("");
        for op in [
            Op::Get,
            Op::Set,
            Op::Delete,
            Op::Incr,
            Op::MetaGet,
            Op::Other(30),
        ] {
            let decision = h.route(&Request::new(op, b"k").with_value_len(1));
            assert_eq!(decision.primary(), &Decision::Forward(0), "{op:?}");
            assert_eq!(
                decision.background(),
                [copy(1, true), copy(2, true)],
                "{op:?}"
            );
        }
        assert!(h.policy().key_points.is_none() && h.policy().rate_below.is_none());
    }

    #[test]
    fn compare_off() {
        let mut h = shadow("compare = false");
        assert_eq!(
            h.route(&get(b"k")).background(),
            [copy(1, false), copy(2, false)]
        );
    }

    #[test]
    fn named_main_and_shadows() {
        let mut h = shadow(r#"main = "canary""#);
        let decision = h.route(&get(b"k"));
        assert_eq!(decision.primary(), &Decision::Forward(1));
        assert_eq!(decision.background(), [copy(0, true), copy(2, true)]);

        let mut h = shadow(
            r#"main = "next"
               shadows = ["canary"]"#,
        );
        let decision = h.route(&get(b"k"));
        assert_eq!(decision.primary(), &Decision::Forward(2));
        assert_eq!(decision.background(), [copy(1, true)]);

        let mut h = shadow(r#"shadows = ["next", "canary"]"#);
        assert_eq!(
            h.route(&get(b"k")).background(),
            [copy(2, true), copy(1, true)]
        );
    }

    #[test]
    fn a_tenth_of_the_keys_is_shadowed() {
        let mut h = shadow("key_range = [0.0, 0.1]");
        let keys = (0..100_000).map(|i| format!("user:{i}"));
        let shadowed = keys
            .filter(|key| copied(&mut h, &get(key.as_bytes())))
            .count();
        assert!((9_500..=10_500).contains(&shadowed), "{shadowed}");
    }

    #[test]
    fn the_same_keys_are_always_shadowed() {
        let config = "key_range = [0.25, 0.5]";
        let mut one = shadow(config);
        let mut two = shadow(config);
        two.seed_random(7);
        for i in 0..2_000 {
            let key = format!("k{i}");
            let request = get(key.as_bytes());
            let expected = (0.25..0.5).contains(&fraction(key.as_bytes()));
            assert_eq!(copied(&mut one, &request), expected, "{key}");
            assert_eq!(copied(&mut one, &request), expected, "{key} again");
            assert_eq!(copied(&mut two, &request), expected, "{key} elsewhere");
            let set = Request::new(Op::Set, key.as_bytes()).with_value_len(1);
            assert_eq!(copied(&mut one, &set), expected, "{key} set");
        }
    }

    #[test]
    fn key_range_is_half_open() {
        let key = b"some-key";
        let point = f64::from(key_point(key));
        let at = point / HASH_SPACE;
        let next = (point + 1.0) / HASH_SPACE;
        let with = |start: f64, end: f64| shadow(&format!("key_range = [{start:?}, {end:?}]"));
        assert!(copied(&mut with(at, next), &get(key)), "start is in");
        assert!(!copied(&mut with(0.0, at), &get(key)), "end is out");
        assert!(!copied(&mut with(at, at), &get(key)), "an empty range");
        assert!(!copied(&mut with(next, 1.0), &get(key)));
        assert!(copied(&mut with(0.0, next), &get(key)));
        assert_eq!(
            with(at, next).policy().key_points,
            Some((point as u64, point as u64 + 1))
        );
        // Every point is below 1.0, so a range up to 1 takes the top of the space.
        assert_eq!(with(0.5, 1.0).policy().key_points, Some((1 << 31, 1 << 32)));
        assert!(with(0.0, 1.0).policy().key_points.is_none());
        // Integers are numbers too.
        assert!(with(0.0, 1.0).policy().in_key_range(key));
        assert!(shadow("key_range = [0, 1]").policy().key_points.is_none());
    }

    #[test]
    fn rate_samples_requests() {
        let mut h = shadow("rate = 0.25");
        h.seed_random(1);
        let copied_count = (0..20_000).filter(|_| copied(&mut h, &get(b"k"))).count();
        assert!((4_600..=5_400).contains(&copied_count), "{copied_count}");

        let mut none = shadow("rate = 0.0");
        assert!((0..1_000).all(|_| !copied(&mut none, &get(b"k"))));
        let mut all = shadow("rate = 1");
        assert!((0..1_000).all(|_| copied(&mut all, &get(b"k"))));
        assert_eq!(all.policy().rate_below, None);
        assert_eq!(shadow("rate = 0.5").policy().rate_below, Some(1 << 63));
    }

    #[test]
    fn rate_applies_within_the_key_range() {
        let mut h = shadow("key_range = [0.0, 0.5]\nrate = 0.5");
        h.seed_random(3);
        let mut in_range = 0;
        let mut count = 0;
        for i in 0..20_000 {
            let key = format!("key-{i}");
            let was_copied = copied(&mut h, &get(key.as_bytes()));
            if fraction(key.as_bytes()) < 0.5 {
                in_range += 1;
                count += usize::from(was_copied);
            } else {
                assert!(!was_copied, "{key} is out of range");
            }
        }
        let share = count as f64 / f64::from(in_range);
        assert!((0.47..=0.53).contains(&share), "{share}");
    }

    #[test]
    fn the_most_shadows_fit_one_plan() {
        let mut h = Harness::<Shadow>::with_weights("", &[1; MAX_BACKGROUND + 1]).expect("config");
        let expected: Vec<_> = (1..=MAX_BACKGROUND as u32).map(|c| copy(c, true)).collect();
        assert_eq!(h.route(&get(b"k")).background(), expected);
        assert_eq!(h.policy().copies().len(), MAX_BACKGROUND);
    }

    #[test]
    fn config_errors() {
        let err = |config: &str| Harness::<Shadow>::new(config, THREE).expect_err(config);

        let e = Harness::<Shadow>::new("", &[]).expect_err("no children");
        assert!(e.contains("at least two children"), "{e}");
        let e = Harness::<Shadow>::new("", &[("only", 1)]).expect_err("one child");
        assert!(e.contains("a child besides main \"only\""), "{e}");
        let e = Harness::<Shadow>::with_weights("", &[1; MAX_BACKGROUND + 2]).expect_err("many");
        assert!(e.contains("9 children") && e.contains("at most 8"), "{e}");

        let e = err(r#"main = "gone""#);
        assert_eq!(
            e,
            r#"main names unknown child "gone" (children: "prod", "canary", "next")"#
        );
        let e = err(r#"shadows = ["canary", "gone"]"#);
        assert!(
            e.starts_with(r#"shadows names unknown child "gone""#),
            "{e}"
        );
        let e = err(r#"shadows = ["prod"]"#);
        assert!(e.contains(r#"shadows names main "prod""#), "{e}");
        let e = err(r#"shadows = ["next", "canary", "next"]"#);
        assert!(e.contains(r#"shadows names "next" twice"#), "{e}");
        let e = err("shadows = []");
        assert!(e.contains("shadows is empty"), "{e}");
        let e = err(r#"shadows = ["a", "b", "c", "d", "e", "f", "g", "h", "i"]"#);
        assert!(e.contains("shadows names 9 children"), "{e}");

        let e = err("key_range = [0.1]");
        assert!(e.contains("key_range has 1 numbers"), "{e}");
        let e = err("key_range = [0.1, 0.2, 0.3]");
        assert!(e.contains("key_range has 3 numbers"), "{e}");
        let e = err("key_range = [-0.1, 0.2]");
        assert!(e.contains("key_range start -0.1 is outside [0, 1]"), "{e}");
        let e = err("key_range = [0.1, 1.5]");
        assert!(e.contains("key_range end 1.5 is outside [0, 1]"), "{e}");
        let e = err("key_range = [0.1, nan]");
        assert!(e.contains("key_range end NaN is outside"), "{e}");
        let e = err("key_range = [0.5, 0.2]");
        assert!(e.contains("starts after it ends"), "{e}");
        let e = err("key_range = \"0-10%\"");
        assert!(e.starts_with("invalid config: "), "{e}");

        let e = err("rate = 1.01");
        assert!(e.contains("rate 1.01 is outside [0, 1]"), "{e}");
        let e = err("rate = -1");
        assert!(e.contains("rate -1 is outside"), "{e}");
        let e = err("rate = inf");
        assert!(e.contains("rate inf is outside"), "{e}");

        let e = err("compare = 1");
        assert!(e.starts_with("invalid config: "), "{e}");
        let e = err("sample = 0.5");
        assert!(e.contains("unknown field `sample`"), "{e}");
    }
}
