//! Routes each request by who sent it: the child configured for the client's identity (from
//! its TLS client certificate), else an optional default child. See `README.md`.

use std::collections::BTreeMap;

use serde::Deserialize;
use switchyard_sdk::{Child, InitContext, Plan, Policy, Reply, Request, host};

/// The reply when the client's identity has no child and there is no default.
pub const NO_ROUTE: &str = "no route for caller";

/// The `config` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Client identity → child name.
    #[serde(default)]
    pub identities: BTreeMap<String, String>,
    /// Child name for clients with another identity or none; without it they get
    /// `SERVER_ERROR no route for caller`.
    #[serde(default)]
    pub default: Option<String>,
}

/// The policy: identities resolved to children once, at init.
#[derive(Debug)]
pub struct Caller {
    routes: BTreeMap<String, Child>,
    default: Option<Child>,
}

impl Caller {
    /// The child for a client with `identity`.
    pub fn lookup(&self, identity: Option<&str>) -> Option<Child> {
        identity
            .and_then(|id| self.routes.get(id).copied())
            .or(self.default)
    }
}

impl Policy for Caller {
    type Config = Config;

    fn init(config: Config, ctx: &InitContext) -> Result<Self, String> {
        let mut routes = BTreeMap::new();
        for (identity, name) in &config.identities {
            if identity.is_empty() {
                return Err("empty identity \"\": use `default` for clients without one".into());
            }
            let child = ctx.resolve(name, &format!("identity {identity:?} routes to"))?;
            routes.insert(identity.clone(), child);
        }
        let default = match &config.default {
            Some(name) => Some(ctx.resolve(name, "default routes to")?),
            None => None,
        };
        Ok(Self { routes, default })
    }

    fn route<'a>(&'a mut self, _request: &Request<'_>) -> Plan<'a> {
        match self.lookup(host::client_identity().as_deref()) {
            Some(child) => Plan::Forward(child),
            None => Plan::Reply(Reply::ServerError(NO_ROUTE)),
        }
    }
}

switchyard_sdk::export_policy!(Caller);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::{Decision, Harness};
    use switchyard_sdk::{Op, Request};

    use super::*;

    const CHILDREN: &[(&str, u32)] = &[("alpha_pool", 1), ("beta_pool", 1), ("others", 1)];

    fn route(harness: &mut Harness<Caller>, identity: Option<&str>) -> Decision {
        harness.set_client_identity(identity);
        harness.route(&Request::new(Op::Get, b"k"))
    }

    #[test]
    fn each_identity_goes_to_its_child_and_the_rest_to_the_default() {
        let config = r#"
            default = "others"
            [identities]
            alpha = "alpha_pool"
            "spiffe://example.org/beta" = "beta_pool"
        "#;
        let mut h = Harness::<Caller>::new(config, CHILDREN).expect("valid config");
        assert_eq!(route(&mut h, Some("alpha")), Decision::Forward(0));
        assert_eq!(
            route(&mut h, Some("spiffe://example.org/beta")),
            Decision::Forward(1)
        );
        assert_eq!(route(&mut h, Some("Alpha")), Decision::Forward(2));
        assert_eq!(route(&mut h, None), Decision::Forward(2));
    }

    #[test]
    fn without_a_default_an_unknown_caller_gets_an_error() {
        let config = r#"identities = { alpha = "alpha_pool" }"#;
        let mut h = Harness::<Caller>::new(config, CHILDREN).expect("valid config");
        assert_eq!(route(&mut h, Some("alpha")), Decision::Forward(0));
        assert_eq!(
            route(&mut h, None),
            Decision::reply(Reply::ServerError(NO_ROUTE))
        );
        assert_eq!(
            route(&mut h, Some("mallory")),
            Decision::reply(Reply::ServerError(NO_ROUTE))
        );
    }

    #[test]
    fn configs_naming_no_child_or_an_empty_identity_are_refused() {
        let e = Harness::<Caller>::new(r#"identities = { alpha = "nope" }"#, CHILDREN)
            .expect_err("unknown child");
        assert!(e.contains("nope"), "{e}");
        let e = Harness::<Caller>::new(r#"identities = { "" = "others" }"#, CHILDREN)
            .expect_err("empty identity");
        assert!(e.contains("empty identity"), "{e}");
        assert!(Harness::<Caller>::new("unknown = 1", CHILDREN).is_err());
    }
}
