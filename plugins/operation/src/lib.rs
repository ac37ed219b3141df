//! Routes each request by its operation: to the child configured for the operation's name, else
//! for its group (`reads`, `writes`, `deletes`, `arithmetic`), else to the default child. Like
//! mcrouter's `OperationSelectorRoute`, with groups. See `README.md`.
//!
//! Every name is resolved at init into one table indexed by operation code, so `route` is one
//! array lookup.

use std::collections::BTreeMap;

use serde::Deserialize;
use switchyard_sdk::{Child, InitContext, Op, Plan, Policy, Reply, Request};

/// The reply when an operation has no route and there is no default.
pub const NO_ROUTE: &str = "no route for operation";

/// A group of operations. Every operation belongs to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// Retrievals and the meta commands that read: `get`, `gets`, `gat`, `gats`, `mg`, `me`.
    Reads,
    /// Commands that store or change an item: `set`, `add`, `replace`, `append`, `prepend`,
    /// `cas`, `ms`, `touch`.
    Writes,
    /// `delete`, `md`.
    Deletes,
    /// `incr`, `decr`, `ma`.
    Arithmetic,
}

impl Group {
    /// Every group, in config-name order of the README.
    pub const ALL: [Group; 4] = [Self::Reads, Self::Writes, Self::Deletes, Self::Arithmetic];

    /// The config name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Reads => "reads",
            Self::Writes => "writes",
            Self::Deletes => "deletes",
            Self::Arithmetic => "arithmetic",
        }
    }

    /// The group of `op`. `gat` and `gats` also change the expiry, but they answer with values,
    /// so they are reads; an operation the SDK does not know is routed as `get` (ABI.md), so it
    /// is a read too.
    pub const fn of(op: Op) -> Self {
        match op {
            Op::Set
            | Op::Add
            | Op::Replace
            | Op::Append
            | Op::Prepend
            | Op::Cas
            | Op::MetaSet
            | Op::Touch => Self::Writes,
            Op::Delete | Op::MetaDelete => Self::Deletes,
            Op::Incr | Op::Decr | Op::MetaArithmetic => Self::Arithmetic,
            _ => Self::Reads,
        }
    }
}

/// Every operation a config may name, in ABI code order (codes 1 to 19).
pub const OPERATIONS: [Op; 19] = [
    Op::Get,
    Op::Gets,
    Op::Gat,
    Op::Gats,
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
    Op::MetaGet,
    Op::MetaSet,
    Op::MetaDelete,
    Op::MetaArithmetic,
    Op::MetaDebug,
];

/// The config key for the fallback child.
pub const DEFAULT: &str = "default";

/// The `config` table: operation names (`get`, ..., `me`), group names (`reads`, `writes`,
/// `deletes`, `arithmetic`) and `default`, each naming a child.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct Config {
    /// Name → child name.
    pub routes: BTreeMap<String, String>,
}

/// The policy: the child of each operation, by position in [`OPERATIONS`].
#[derive(Debug)]
pub struct Operation {
    routes: [Option<Child>; OPERATIONS.len()],
}

impl Operation {
    /// The child for `op`, if any. Unknown operations go where `get` goes.
    pub fn lookup(&self, op: Op) -> Option<Child> {
        let idx = OPERATIONS
            .iter()
            .position(|&known| known == op)
            .unwrap_or(0);
        self.routes[idx]
    }
}

/// What a config name designates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    Operation(Op),
    Group(Group),
    Default,
}

fn parse_name(name: &str) -> Option<Name> {
    if name == DEFAULT {
        return Some(Name::Default);
    }
    if let Some(&op) = OPERATIONS.iter().find(|op| op.name() == Some(name)) {
        return Some(Name::Operation(op));
    }
    Group::ALL
        .into_iter()
        .find(|group| group.name() == name)
        .map(Name::Group)
}

impl Policy for Operation {
    type Config = Config;

    fn init(config: Config, ctx: &InitContext) -> Result<Self, String> {
        if config.routes.is_empty() {
            return Err(
                "operation needs at least one route: an operation (get, set, ...), a group \
                 (reads, writes, deletes, arithmetic) or default"
                    .into(),
            );
        }
        let mut named = Vec::new();
        let mut unknown = Vec::new();
        for (name, child) in &config.routes {
            match parse_name(name) {
                Some(parsed) => named.push((parsed, name, child)),
                None => unknown.push(format!("{name:?}")),
            }
        }
        if !unknown.is_empty() {
            let operations: Vec<_> = OPERATIONS.iter().filter_map(|op| op.name()).collect();
            let groups: Vec<_> = Group::ALL.iter().map(|group| group.name()).collect();
            return Err(format!(
                "unknown operation or group {} (operations: {}; groups: {}; or default)",
                unknown.join(", "),
                operations.join(" "),
                groups.join(" "),
            ));
        }
        let mut by_op = BTreeMap::new();
        let mut by_group = BTreeMap::new();
        let mut default = None;
        for (parsed, name, child) in named {
            let child = ctx.resolve(child, &format!("{name:?} routes to"))?;
            match parsed {
                Name::Operation(op) => {
                    by_op.insert(op.code(), child);
                }
                Name::Group(group) => {
                    by_group.insert(group, child);
                }
                Name::Default => default = Some(child),
            }
        }
        let routes = OPERATIONS.map(|op| {
            by_op
                .get(&op.code())
                .or_else(|| by_group.get(&Group::of(op)))
                .copied()
                .or(default)
        });
        Ok(Self { routes })
    }

    fn route<'a>(&'a mut self, request: &Request<'_>) -> Plan<'a> {
        match self.lookup(request.op()) {
            Some(child) => Plan::Forward(child),
            None => Plan::Reply(Reply::ServerError(NO_ROUTE)),
        }
    }
}

switchyard_sdk::export_policy!(Operation);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::{Decision, Harness};
    use switchyard_sdk::{Op, Request};

    use super::*;

    const CHILDREN: &[(&str, u32)] = &[
        ("main", 1),
        ("replicated", 1),
        ("counters", 1),
        ("purge", 1),
        ("special", 1),
    ];

    fn operation(config: &str) -> Harness<Operation> {
        Harness::new(config, CHILDREN).expect("valid config")
    }

    fn route(h: &mut Harness<Operation>, op: Op) -> Decision {
        h.route(&Request::new(op, b"key"))
    }

    fn forward(h: &mut Harness<Operation>, op: Op) -> u32 {
        match route(h, op) {
            Decision::Forward(child) => child,
            other => panic!("{op:?}: {other:?}"),
        }
    }

    #[test]
    fn groups_partition_the_operations() {
        let expected = [
            (
                Group::Reads,
                &["get", "gets", "gat", "gats", "mg", "me"][..],
            ),
            (
                Group::Writes,
                &[
                    "set", "add", "replace", "append", "prepend", "cas", "touch", "ms",
                ],
            ),
            (Group::Deletes, &["delete", "md"]),
            (Group::Arithmetic, &["incr", "decr", "ma"]),
        ];
        for (group, names) in expected {
            let mut members: Vec<_> = OPERATIONS
                .iter()
                .filter(|&&op| Group::of(op) == group)
                .filter_map(|op| op.name())
                .collect();
            let mut names = names.to_vec();
            members.sort_unstable();
            names.sort_unstable();
            assert_eq!(members, names, "{}", group.name());
        }
        assert_eq!(Group::of(Op::Other(40)), Group::Reads);
        // OPERATIONS is in code order, 1 to 19.
        for (idx, op) in OPERATIONS.iter().enumerate() {
            assert_eq!(op.code() as usize, idx + 1);
        }
    }

    #[test]
    fn most_specific_name_wins() {
        let mut h = operation(
            r#"
            default = "main"
            writes = "replicated"
            deletes = "purge"
            arithmetic = "counters"
            touch = "main"
            gat = "replicated"
            ms = "special"
            "#,
        );
        for op in [Op::Get, Op::Gets, Op::MetaGet, Op::MetaDebug, Op::Gats] {
            assert_eq!(forward(&mut h, op), 0, "{op:?}: default");
        }
        assert_eq!(forward(&mut h, Op::Gat), 1, "gat by name");
        for op in [
            Op::Set,
            Op::Add,
            Op::Replace,
            Op::Append,
            Op::Prepend,
            Op::Cas,
        ] {
            assert_eq!(forward(&mut h, op), 1, "{op:?}: writes");
        }
        assert_eq!(forward(&mut h, Op::Touch), 0, "touch by name over writes");
        assert_eq!(forward(&mut h, Op::MetaSet), 4, "ms by name over writes");
        for op in [Op::Delete, Op::MetaDelete] {
            assert_eq!(forward(&mut h, op), 3, "{op:?}: deletes");
        }
        for op in [Op::Incr, Op::Decr, Op::MetaArithmetic] {
            assert_eq!(forward(&mut h, op), 2, "{op:?}: arithmetic");
        }
    }

    #[test]
    fn unknown_operations_route_as_get() {
        let mut h = operation(
            r#"
            get = "special"
            reads = "replicated"
            default = "main"
            "#,
        );
        assert_eq!(forward(&mut h, Op::Get), 4);
        assert_eq!(forward(&mut h, Op::Other(20)), 4);
        assert_eq!(forward(&mut h, Op::Other(0)), 4);
        assert_eq!(forward(&mut h, Op::Gets), 1);
        assert_eq!(forward(&mut h, Op::Set), 0);
    }

    #[test]
    fn no_route_without_default() {
        let mut h = operation(r#"reads = "main""#);
        assert_eq!(forward(&mut h, Op::Get), 0);
        let set = Request::new(Op::Set, b"key").with_value_len(3);
        assert_eq!(h.route(&set), Decision::reply(Reply::ServerError(NO_ROUTE)));
        assert_eq!(
            route(&mut h, Op::Delete),
            Decision::reply(Reply::ServerError("no route for operation"))
        );
    }

    #[test]
    fn mcrouter_style_operation_policies() {
        // mcrouter's OperationSelectorRoute with operation_policies and default_policy.
        let mut h = operation(
            r#"
            get = "main"
            add = "replicated"
            set = "replicated"
            delete = "replicated"
            default = "special"
            "#,
        );
        assert_eq!(forward(&mut h, Op::Get), 0);
        assert_eq!(forward(&mut h, Op::Set), 1);
        assert_eq!(forward(&mut h, Op::Delete), 1);
        assert_eq!(forward(&mut h, Op::Replace), 4);
        assert_eq!(forward(&mut h, Op::Incr), 4);
    }

    #[test]
    fn config_errors() {
        let err = Harness::<Operation>::new("", CHILDREN).expect_err("empty");
        assert!(err.contains("at least one route"), "{err}");

        let err = Harness::<Operation>::new(
            r#"
            gets = "main"
            read = "main"
            flush_all = "main"
            "#,
            CHILDREN,
        )
        .expect_err("unknown names");
        assert_eq!(
            err,
            "unknown operation or group \"flush_all\", \"read\" (operations: get gets gat gats \
             set add replace append prepend cas delete incr decr touch mg ms md ma me; groups: \
             reads writes deletes arithmetic; or default)"
        );

        let err = Harness::<Operation>::new(r#"writes = "nope""#, CHILDREN).expect_err("child");
        assert!(
            err.starts_with(r#""writes" routes to unknown child "nope" (children: "main""#),
            "{err}"
        );
        let err = Harness::<Operation>::new(r#"default = "x""#, &[]).expect_err("no children");
        assert!(err.ends_with("(children: none)"), "{err}");

        let err = Harness::<Operation>::new("get = 1", CHILDREN).expect_err("type");
        assert!(err.starts_with("invalid config: "), "{err}");
        let err = Harness::<Operation>::new(r#"get = ["main"]"#, CHILDREN).expect_err("list value");
        assert!(err.starts_with("invalid config: "), "{err}");
    }
}
