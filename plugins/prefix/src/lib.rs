//! Routes each key to the child of the longest configured prefix it starts with, else to an
//! optional default child. See `README.md`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use switchyard_sdk::metrics::Counter;
use switchyard_sdk::{Child, InitContext, Plan, Policy, Reply, Request};

/// The reply when no prefix matches and there is no default.
pub const NO_ROUTE: &str = "no route for key";

/// The `config` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Key prefix → child name.
    #[serde(default)]
    pub prefixes: BTreeMap<String, String>,
    /// Child name for keys no prefix matches; without it they get
    /// `SERVER_ERROR no route for key`.
    #[serde(default)]
    pub default: Option<String>,
}

/// The policy: prefixes grouped by length, longest first.
#[derive(Debug)]
pub struct Prefix {
    /// Distinct prefix lengths, longest first.
    lengths: Vec<usize>,
    /// Prefix → child index.
    routes: BTreeMap<Box<[u8]>, Child>,
    default: Option<Child>,
    /// Keys no prefix matched, sent to the default child (`stats plugins`).
    defaulted: Counter,
    /// Keys no prefix matched, with no default: answered `SERVER_ERROR`.
    unrouted: Counter,
}

impl Prefix {
    /// The child of the longest prefix of `key`, if any matches.
    pub fn matched(&self, key: &[u8]) -> Option<Child> {
        self.lengths
            .iter()
            .filter_map(|&len| key.get(..len))
            .find_map(|prefix| self.routes.get(prefix).copied())
    }

    /// The child for `key`: the longest matching prefix's, else the default.
    pub fn lookup(&self, key: &[u8]) -> Option<Child> {
        self.matched(key).or(self.default)
    }
}

impl Policy for Prefix {
    type Config = Config;

    fn init(config: Config, ctx: &InitContext) -> Result<Self, String> {
        let mut routes = BTreeMap::new();
        let mut lengths = BTreeSet::new();
        for (prefix, name) in &config.prefixes {
            if prefix.is_empty() {
                return Err("empty prefix \"\": use `default` for keys no prefix matches".into());
            }
            let child = ctx.resolve(name, &format!("prefix {prefix:?} routes to"))?;
            routes.insert(prefix.as_bytes().into(), child);
            lengths.insert(prefix.len());
        }
        let default = match &config.default {
            Some(name) => Some(ctx.resolve(name, "default routes to")?),
            None => None,
        };
        Ok(Self {
            lengths: lengths.into_iter().rev().collect(),
            routes,
            default,
            defaulted: Counter::define("defaulted")?,
            unrouted: Counter::define("unrouted")?,
        })
    }

    fn route<'a>(&'a mut self, request: &Request<'_>) -> Plan<'a> {
        if let Some(child) = self.matched(request.key()) {
            return Plan::Forward(child);
        }
        match self.default {
            Some(child) => {
                self.defaulted.increment();
                Plan::Forward(child)
            }
            None => {
                self.unrouted.increment();
                Plan::Reply(Reply::ServerError(NO_ROUTE))
            }
        }
    }
}

switchyard_sdk::export_policy!(Prefix);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::{Decision, Harness};
    use switchyard_sdk::{Op, Request};

    use super::*;

    const CHILDREN: &[(&str, u32)] = &[("main", 1), ("sessions", 1), ("pool:users", 3)];

    const CONFIG: &str = r#"
        default = "main"
        [prefixes]
        "session:" = "sessions"
        "user:" = "pool:users"
        "user:admin:" = "main"
        "u" = "sessions"
    "#;

    fn route(harness: &mut Harness<Prefix>, key: &str) -> Decision {
        harness.route(&Request::new(Op::Get, key.as_bytes()))
    }

    #[test]
    fn longest_prefix_wins() {
        let mut h = Harness::<Prefix>::new(CONFIG, CHILDREN).expect("valid config");
        assert_eq!(route(&mut h, "session:42"), Decision::Forward(1));
        assert_eq!(route(&mut h, "user:42"), Decision::Forward(2));
        assert_eq!(route(&mut h, "user:admin:1"), Decision::Forward(0));
        assert_eq!(route(&mut h, "user:admin"), Decision::Forward(2));
        assert_eq!(route(&mut h, "us"), Decision::Forward(1));
        assert_eq!(route(&mut h, "u"), Decision::Forward(1));
    }

    #[test]
    fn default_when_nothing_matches() {
        let mut h = Harness::<Prefix>::new(CONFIG, CHILDREN).expect("valid config");
        assert_eq!(route(&mut h, "other"), Decision::Forward(0));
        assert_eq!(route(&mut h, "Session:1"), Decision::Forward(0));
        assert_eq!(route(&mut h, ""), Decision::Forward(0));
        assert_eq!(h.counter("defaulted"), 3);
        assert_eq!(h.counter("unrouted"), 0);
    }

    #[test]
    fn no_default_replies_server_error() {
        let config = r#"prefixes = { "a:" = "sessions" }"#;
        let mut h = Harness::<Prefix>::new(config, CHILDREN).expect("valid config");
        assert_eq!(route(&mut h, "a:1"), Decision::Forward(1));
        assert_eq!(
            route(&mut h, "b:1"),
            Decision::reply(Reply::ServerError("no route for key"))
        );
        let set = Request::new(Op::Set, b"b:1").with_value_len(3);
        assert_eq!(h.route(&set), Decision::reply(Reply::ServerError(NO_ROUTE)));
        assert_eq!((h.counter("defaulted"), h.counter("unrouted")), (0, 2));
    }

    #[test]
    fn empty_config_routes_nothing() {
        let mut h = Harness::<Prefix>::new("", &[]).expect("valid config");
        assert_eq!(
            route(&mut h, "k"),
            Decision::reply(Reply::ServerError(NO_ROUTE))
        );
    }

    #[test]
    fn non_utf8_keys() {
        let config = "prefixes = { \"\u{e9}:\" = \"sessions\" }";
        let mut h = Harness::<Prefix>::new(config, CHILDREN).expect("valid config");
        assert_eq!(
            h.route(&Request::new(Op::Get, b"\xc3\xa9:x")),
            Decision::Forward(1)
        );
        let miss = h.route(&Request::new(Op::Get, b"\xc3:x"));
        assert_eq!(miss, Decision::reply(Reply::ServerError(NO_ROUTE)));
    }

    #[test]
    fn config_errors() {
        let err = Harness::<Prefix>::new(r#"prefixes = { "a:" = "nope" }"#, CHILDREN)
            .expect_err("unknown child");
        assert_eq!(
            err,
            r#"prefix "a:" routes to unknown child "nope" (children: "main", "sessions", "pool:users")"#
        );
        let err = Harness::<Prefix>::new(r#"default = "gone""#, CHILDREN).expect_err("unknown");
        assert!(
            err.starts_with(r#"default routes to unknown child "gone""#),
            "{err}"
        );
        let err = Harness::<Prefix>::new(r#"prefixes = { "" = "main" }"#, CHILDREN)
            .expect_err("empty prefix");
        assert!(err.contains("empty prefix"), "{err}");
        let err =
            Harness::<Prefix>::new(r#"prefix = { "a" = "main" }"#, CHILDREN).expect_err("typo");
        assert!(err.contains("unknown field `prefix`"), "{err}");
        let err = Harness::<Prefix>::new("prefixes = { a = 1 }", CHILDREN).expect_err("type");
        assert!(err.starts_with("invalid config: "), "{err}");
    }
}
