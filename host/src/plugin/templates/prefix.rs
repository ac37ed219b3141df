//! A prefix policy: a key starting with a configured prefix goes to that prefix's child, any
//! other key to the default child. `config = { prefixes = { "user:" = "users" }, default =
//! "main" }`. It counts the keys that went to the default in its counter `defaulted`, which
//! the router shows in `stats plugins` as `<node>:counter:defaulted`.

use std::collections::BTreeMap;

use serde::Deserialize;
use switchyard_sdk::metrics::Counter;
use switchyard_sdk::{Child, InitContext, Plan, Policy, Reply, Request};

/// The node's `config` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Key prefix → child name.
    #[serde(default)]
    pub prefixes: BTreeMap<String, String>,
    /// The child of keys no prefix matches; without one they get `SERVER_ERROR`.
    #[serde(default)]
    pub default: Option<String>,
}

/// The policy: prefixes, longest first, and the default.
#[derive(Debug)]
pub struct Prefixes {
    prefixes: Vec<(Vec<u8>, Child)>,
    default: Option<Child>,
    /// Keys no prefix matched that went to the default.
    defaulted: Counter,
}

impl Policy for Prefixes {
    type Config = Config;

    fn init(config: Config, ctx: &InitContext) -> Result<Self, String> {
        let mut prefixes = Vec::new();
        for (prefix, name) in &config.prefixes {
            let child = ctx.resolve(name, &format!("prefix {prefix:?} routes to"))?;
            prefixes.push((prefix.as_bytes().to_vec(), child));
        }
        prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()));
        let default = match &config.default {
            Some(name) => Some(ctx.resolve(name, "default")?),
            None => None,
        };
        Ok(Prefixes {
            prefixes,
            default,
            defaulted: Counter::define("defaulted")?,
        })
    }

    fn route<'a>(&'a mut self, request: &Request<'_>) -> Plan<'a> {
        let key = request.key();
        if let Some(&(_, child)) = self.prefixes.iter().find(|(p, _)| key.starts_with(p)) {
            return Plan::Forward(child);
        }
        match self.default {
            Some(child) => {
                self.defaulted.increment();
                Plan::Forward(child)
            }
            None => Plan::Reply(Reply::ServerError("no route for key")),
        }
    }
}

switchyard_sdk::export_policy!(Prefixes);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::{Decision, Harness};
    use switchyard_sdk::{Op, Request};

    const CONFIG: &str = r#"prefixes = { "user:" = "users" }
default = "main""#;

    #[test]
    fn a_prefix_picks_its_child_and_the_rest_go_to_the_default() {
        let children = [("users", 1), ("main", 1)];
        let mut h = Harness::<Prefixes>::new(CONFIG, &children).expect("config");
        assert_eq!(h.forwarded(&Request::new(Op::Get, b"user:1")), 0);
        assert_eq!(h.forwarded(&Request::new(Op::Get, b"other")), 1);
        assert_eq!(h.counter("defaulted"), 1);
        let mut strict =
            Harness::<Prefixes>::new(r#"prefixes = { "a" = "users" }"#, &children).expect("ok");
        assert_eq!(
            strict.route(&Request::new(Op::Get, b"b")),
            Decision::reply(Reply::ServerError("no route for key"))
        );
        assert!(Harness::<Prefixes>::new(r#"default = "nope""#, &children).is_err());
    }
}
