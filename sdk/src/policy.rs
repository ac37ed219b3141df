//! The trait a plugin implements, and what `init` learns about the node's children.

use serde::de::DeserializeOwned;

use crate::host;
use crate::plan::{Child, Plan};
use crate::request::Request;
use crate::status::ReplyStatus;

/// A routing policy: configured once by [`Policy::init`], then asked to [`Policy::route`]
/// every request, and to [`Policy::on_reply`] for the reply of every [`Plan::Call`] it makes.
/// Export it with [`export_policy!`](crate::export_policy).
///
/// One instance serves one route node. The host may discard an instance at any time (after a
/// trap, on reload) and `init` a fresh one, so keep no state that must survive that.
pub trait Policy: Sized + 'static {
    /// The node's `config` table. A table that fails to deserialize rejects the configuration
    /// with the TOML error as the reason; use `#[serde(deny_unknown_fields)]` so typos do too.
    type Config: DeserializeOwned;

    /// Builds the policy, or rejects the configuration with a reason (shown to the operator).
    fn init(config: Self::Config, ctx: &InitContext) -> Result<Self, String>;

    /// Decides what happens to one request. Runs on the request path under a time budget:
    /// do not allocate more than needed, and do not panic (a panic is a trap, which fails the
    /// request and replaces the instance).
    fn route<'a>(&'a mut self, request: &Request<'_>) -> Plan<'a>;

    /// Decides what to make of the reply to a [`Plan::Call`]: `cookie` is the call's, `status`
    /// what the child answered (a child that is down, timed out or unreachable answers
    /// [`ReplyStatus::ServerError`]). Return [`Plan::Pass`] to make that reply this node's,
    /// or any other plan: [`Plan::Forward`], [`Plan::Reply`], [`Plan::FanOut`], or another
    /// [`Plan::Call`] (at most [`MAX_CALLS`](crate::abi::MAX_CALLS) per request and node).
    ///
    /// `request` carries the operation and the key only: its flags, exptime, value length and
    /// listener are 0 here (the host does not pass them again). It may run on a fresh instance,
    /// not the one whose `route` made the call, so decide from the cookie, not from state kept
    /// between the two calls. The same time budget as `route` applies.
    ///
    /// The default passes every reply through, which makes a `Call` behave like a `Forward`.
    fn on_reply<'a>(
        &'a mut self,
        cookie: u32,
        status: ReplyStatus,
        request: &Request<'_>,
    ) -> Plan<'a> {
        let _ = (cookie, status, request);
        Plan::Pass
    }
}

/// [`Policy::Config`] for a policy without settings: accepts only an empty table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

/// One child of the node, as the host describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildInfo {
    name: String,
    weight: u32,
}

impl ChildInfo {
    /// The child's name, as the host names it. For a pool's servers, the name twemproxy would
    /// hash for ketama: the server's explicit name, else `host` when the port is 11211, else
    /// `host:port` (see ABI.md).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's weight: a server's `:weight`, 1 for other children.
    pub fn weight(&self) -> u32 {
        self.weight
    }
}

/// What [`Policy::init`] knows besides its config: the node's children, in index order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InitContext {
    children: Vec<ChildInfo>,
}

impl InitContext {
    /// A context with these `(name, weight)` children, for unit tests that call
    /// [`Policy::init`] directly (the [`testing::Harness`](crate::testing) builds one itself).
    pub fn new<S: Into<String>>(children: impl IntoIterator<Item = (S, u32)>) -> Self {
        Self {
            children: children
                .into_iter()
                .map(|(name, weight)| ChildInfo {
                    name: name.into(),
                    weight,
                })
                .collect(),
        }
    }

    /// Asks the host (the `child_*` imports).
    pub(crate) fn from_host() -> Self {
        Self {
            children: (0..host::child_count())
                .map(|idx| ChildInfo {
                    name: host::child_name(idx),
                    weight: host::child_weight(idx),
                })
                .collect(),
        }
    }

    /// Number of children.
    pub fn child_count(&self) -> u32 {
        self.children.len() as u32
    }

    /// All children, in index order.
    pub fn children(&self) -> &[ChildInfo] {
        &self.children
    }

    /// One child, if the index is in range.
    pub fn child(&self, child: Child) -> Option<&ChildInfo> {
        self.children.get(child.0 as usize)
    }

    /// The first child with this name.
    pub fn find(&self, name: &str) -> Option<Child> {
        self.children
            .iter()
            .position(|child| child.name == name)
            .map(|idx| Child(idx as u32))
    }

    /// The first child with this name, or an error for the operator that lists the children:
    /// `{what} unknown child "{name}" (children: "a", "b")`, or `(children: none)` for a node
    /// without children. `what` says who names the child, verb included (`default routes to`,
    /// `from names`), so that [`Policy::init`] can return the error as it is.
    pub fn resolve(&self, name: &str, what: &str) -> Result<Child, String> {
        self.find(name).ok_or_else(|| {
            let known: Vec<_> = self
                .children
                .iter()
                .map(|child| format!("{:?}", child.name()))
                .collect();
            let known = if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            };
            format!("{what} unknown child {name:?} (children: {known})")
        })
    }

    /// The two children of a node that must have exactly two with distinct roles (`roles`,
    /// e.g. `("main", "backup")`), each named in the config or left out: a name left out is
    /// the child the other name is not, and with both left out the first role is child 0.
    /// `plugin` names the plugin in the error.
    pub fn resolve_pair(
        &self,
        plugin: &str,
        roles: (&str, &str),
        names: (Option<&str>, Option<&str>),
    ) -> Result<(Child, Child), String> {
        let (first_role, second_role) = roles;
        let count = self.child_count();
        if count != 2 {
            return Err(format!(
                "{plugin} needs exactly two children, {first_role} and {second_role}; the node \
                 has {count}"
            ));
        }
        let first = names
            .0
            .map(|name| self.resolve(name, &format!("{first_role} names")))
            .transpose()?;
        let second = names
            .1
            .map(|name| self.resolve(name, &format!("{second_role} names")))
            .transpose()?;
        let other = |child: Child| Child(1 - child.0);
        match (first, second) {
            (Some(a), Some(b)) if a == b => Err(format!(
                "{first_role} and {second_role} are the same child {:?}; they must be the \
                 node's two children",
                self.child(a).map_or("", ChildInfo::name)
            )),
            (Some(a), Some(b)) => Ok((a, b)),
            (Some(a), None) => Ok((a, other(a))),
            (None, Some(b)) => Ok((other(b), b)),
            (None, None) => Ok((Child(0), Child(1))),
        }
    }

    /// The children with their indexes.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (Child, &ChildInfo)> + ExactSizeIterator {
        self.children
            .iter()
            .enumerate()
            .map(|(idx, child)| (Child(idx as u32), child))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_config_accepts_only_an_empty_table() {
        assert_eq!(toml::from_str::<NoConfig>(""), Ok(NoConfig {}));
        assert!(toml::from_str::<NoConfig>("x = 1").is_err());
    }

    #[test]
    fn lookups() {
        let ctx = InitContext::new([("a", 1), ("b", 3)]);
        assert_eq!(ctx.child_count(), 2);
        assert_eq!(ctx.find("b"), Some(Child(1)));
        assert_eq!(ctx.find("c"), None);
        assert_eq!(ctx.child(Child(1)).map(ChildInfo::weight), Some(3));
        assert_eq!(ctx.child(Child(2)), None);
        let names: Vec<_> = ctx.iter().map(|(c, info)| (c.0, info.name())).collect();
        assert_eq!(names, [(0, "a"), (1, "b")]);
    }

    #[test]
    fn resolve_names_the_children_it_knows() {
        let ctx = InitContext::new([("a", 1), ("b:11212", 3)]);
        assert_eq!(ctx.resolve("b:11212", "default routes to"), Ok(Child(1)));
        assert_eq!(
            ctx.resolve("c", "default routes to"),
            Err(r#"default routes to unknown child "c" (children: "a", "b:11212")"#.to_owned())
        );
        let none = InitContext::new(Vec::<(&str, u32)>::new());
        assert_eq!(
            none.resolve("a", "from names"),
            Err(r#"from names unknown child "a" (children: none)"#.to_owned())
        );
    }
}
