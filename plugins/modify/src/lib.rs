//! Forwards every request to the node's one child with its key and exptime changed: a prefix
//! stripped and/or added, the exptime set or capped. mcrouter's `ModifyKeyRoute` and
//! `ModifyExptimeRoute` in one plugin. See `README.md`.
//!
//! The host applies the change ([`Rewrite`]); the plugin only decides, per key, whether
//! `strip_prefix` is there to strip. Replies carry the client's key again.

use serde::Deserialize;
use switchyard_sdk::abi::MAX_KEY_PREFIX;
use switchyard_sdk::rewrite::is_key_byte;
use switchyard_sdk::{Child, Exptime, InitContext, KeyRewrite, Plan, Policy, Request, Rewrite};

/// memcached's boundary between relative exptimes (seconds from now) and absolute ones (Unix
/// times): 30 days.
pub const RELATIVE_EXPTIME_LIMIT: u32 = 60 * 60 * 24 * 30;

/// The `config` table. At least one key must be given; `exptime` and `max_exptime` exclude
/// each other.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Removed from the start of the keys that start with it.
    #[serde(default)]
    pub strip_prefix: Option<String>,
    /// Put in front of every key (after `strip_prefix` is removed).
    #[serde(default)]
    pub add_prefix: Option<String>,
    /// Every request that carries an exptime gets this one instead, as memcached reads it
    /// (seconds up to 30 days, a Unix time beyond; 0 never expires).
    #[serde(default)]
    pub exptime: Option<i64>,
    /// Every request that carries an exptime expires within this many seconds: one that would
    /// never expire, or expire later, gets this one.
    #[serde(default)]
    pub max_exptime: Option<u32>,
}

/// The policy.
#[derive(Debug)]
pub struct Modify {
    /// The prefix to strip; empty for none.
    strip_prefix: Vec<u8>,
    /// The prefix to add; empty for none.
    add_prefix: Vec<u8>,
    /// What happens to the exptime.
    exptime: Exptime,
}

impl Modify {
    /// The key rewrite for `key`, if it changes the key: `strip_prefix` is stripped when the
    /// key starts with it (unless nothing would be left of the key), `add_prefix` is added to
    /// every key.
    pub fn key_rewrite(&self, key: &[u8]) -> Option<KeyRewrite<'_>> {
        let strips = !self.strip_prefix.is_empty()
            && key.starts_with(&self.strip_prefix)
            && (key.len() > self.strip_prefix.len() || !self.add_prefix.is_empty());
        // A prefix longer than u32::MAX bytes could not have matched a key.
        let strip = if strips {
            self.strip_prefix.len() as u32
        } else {
            0
        };
        (strip != 0 || !self.add_prefix.is_empty()).then_some(KeyRewrite {
            strip,
            prefix: &self.add_prefix,
        })
    }

    /// What happens to every request's exptime.
    pub fn exptime(&self) -> Exptime {
        self.exptime
    }
}

/// Checks `add_prefix` as the host will: not empty, at most [`MAX_KEY_PREFIX`] bytes, no space
/// or control byte.
fn check_add_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("add_prefix is empty; leave it out to add nothing".into());
    }
    if prefix.len() > MAX_KEY_PREFIX {
        return Err(format!(
            "add_prefix is {} bytes; a key prefix is at most {MAX_KEY_PREFIX} (memcached's key \
             length limit)",
            prefix.len()
        ));
    }
    if let Some((at, byte)) = prefix.bytes().enumerate().find(|&(_, b)| !is_key_byte(b)) {
        return Err(format!(
            "add_prefix {prefix:?} has byte {byte:#04x} at {at}; keys cannot hold spaces or \
             control bytes"
        ));
    }
    Ok(())
}

/// The exptime rewrite of `exptime` or `max_exptime`.
fn exptime(exptime: Option<i64>, max_exptime: Option<u32>) -> Result<Exptime, String> {
    match (exptime, max_exptime) {
        (Some(_), Some(_)) => Err(
            "exptime and max_exptime exclude each other: exptime sets every exptime, \
             max_exptime caps it; give one"
                .into(),
        ),
        (Some(value), None) if value < 0 => Err(format!(
            "exptime is {value}; a negative exptime would expire every item at once (0 never \
             expires)"
        )),
        (Some(value), None) => Ok(Exptime::Set(value)),
        (None, Some(0)) => Err(
            "max_exptime is 0, which memcached reads as never expiring: it would cap nothing; \
             give a number of seconds"
                .into(),
        ),
        (None, Some(cap)) if cap > RELATIVE_EXPTIME_LIMIT => Err(format!(
            "max_exptime is {cap} seconds; at most {RELATIVE_EXPTIME_LIMIT} (30 days), as \
             memcached reads a longer exptime as a Unix time"
        )),
        (None, Some(cap)) => Ok(Exptime::Cap(cap)),
        (None, None) => Ok(Exptime::Keep),
    }
}

impl Policy for Modify {
    type Config = Config;

    fn init(config: Config, ctx: &InitContext) -> Result<Self, String> {
        let count = ctx.child_count();
        if count != 1 {
            return Err(format!(
                "modify needs exactly one child; the node has {count}"
            ));
        }
        if config.strip_prefix.is_none()
            && config.add_prefix.is_none()
            && config.exptime.is_none()
            && config.max_exptime.is_none()
        {
            return Err(
                "modify changes nothing: give strip_prefix, add_prefix, exptime or max_exptime"
                    .into(),
            );
        }
        if config.strip_prefix.as_deref() == Some("") {
            return Err("strip_prefix is empty; leave it out to strip nothing".into());
        }
        if let Some(prefix) = &config.add_prefix {
            check_add_prefix(prefix)?;
        }
        Ok(Self {
            strip_prefix: config.strip_prefix.unwrap_or_default().into_bytes(),
            add_prefix: config.add_prefix.unwrap_or_default().into_bytes(),
            exptime: exptime(config.exptime, config.max_exptime)?,
        })
    }

    fn route<'a>(&'a mut self, request: &Request<'_>) -> Plan<'a> {
        let rewrite = Rewrite {
            exptime: self.exptime,
            key: self.key_rewrite(request.key()),
        };
        let plan = Plan::Forward(Child(0));
        if rewrite.is_identity() {
            plan
        } else {
            plan.rewritten(rewrite)
        }
    }
}

switchyard_sdk::export_policy!(Modify);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::{Decision, Harness, OwnedRewrite};
    use switchyard_sdk::{Op, Request};

    use super::*;

    const ONE: &[(&str, u32)] = &[("pool", 1)];

    const OPS: [Op; 10] = [
        Op::Get,
        Op::Gat,
        Op::Set,
        Op::Cas,
        Op::Delete,
        Op::Incr,
        Op::Touch,
        Op::MetaGet,
        Op::MetaSet,
        Op::Other(30),
    ];

    fn modify(config: &str) -> Harness<Modify> {
        Harness::new(config, ONE).expect("valid config")
    }

    /// The forward to child 0 with this rewrite.
    fn rewritten(exptime: Exptime, strip: u32, prefix: &[u8]) -> Decision {
        Decision::Extended {
            primary: Box::new(Decision::Forward(0)),
            rewrite: OwnedRewrite {
                exptime,
                strip,
                prefix: prefix.to_vec(),
            },
            background: Vec::new(),
        }
    }

    /// The key `key` becomes under the policy's plan, as the host would rewrite it.
    fn new_key(h: &mut Harness<Modify>, key: &[u8]) -> Vec<u8> {
        match h.route(&Request::new(Op::Get, key)).rewrite() {
            Some(rewrite) => rewrite.key(key).expect("strip within the key"),
            None => key.to_vec(),
        }
    }

    #[test]
    fn strip_prefix() {
        let mut h = modify(r#"strip_prefix = "old:""#);
        for op in OPS {
            let request = Request::new(op, b"old:user:7").with_exptime(60);
            assert_eq!(
                h.route(&request),
                rewritten(Exptime::Keep, 4, b""),
                "{op:?}"
            );
        }
        assert_eq!(new_key(&mut h, b"old:user:7"), b"user:7");
        // Keys without the prefix are left alone: a plain forward.
        for key in [&b"user:7"[..], b"old", b"Old:x", b"xold:x"] {
            assert_eq!(h.route(&Request::new(Op::Get, key)), Decision::Forward(0));
        }
    }

    #[test]
    fn add_prefix() {
        let mut h = modify(r#"add_prefix = "tenant-a:""#);
        for op in OPS {
            assert_eq!(
                h.route(&Request::new(op, b"k")),
                rewritten(Exptime::Keep, 0, b"tenant-a:"),
                "{op:?}"
            );
        }
        assert_eq!(new_key(&mut h, b"user:7"), b"tenant-a:user:7");
    }

    #[test]
    fn strip_and_add() {
        let mut h = modify("strip_prefix = \"old:\"\nadd_prefix = \"new:\"");
        assert_eq!(
            h.route(&Request::new(Op::Set, b"old:user:7")),
            rewritten(Exptime::Keep, 4, b"new:")
        );
        assert_eq!(new_key(&mut h, b"old:user:7"), b"new:user:7");
        // Keys without the prefix to strip only get the one to add.
        assert_eq!(
            h.route(&Request::new(Op::Set, b"user:7")),
            rewritten(Exptime::Keep, 0, b"new:")
        );
        assert_eq!(new_key(&mut h, b"user:7"), b"new:user:7");
        // A key that is just the prefix becomes the new prefix.
        assert_eq!(new_key(&mut h, b"old:"), b"new:");
    }

    #[test]
    fn a_key_is_never_stripped_to_nothing() {
        let mut h = modify(r#"strip_prefix = "old:""#);
        assert_eq!(
            h.route(&Request::new(Op::Get, b"old:")),
            Decision::Forward(0)
        );
        assert_eq!(new_key(&mut h, b"old:x"), b"x");
        assert_eq!(h.policy().key_rewrite(b"old:"), None);
    }

    #[test]
    fn exptime_is_set() {
        let mut h = modify("exptime = 300");
        for op in OPS {
            let request = Request::new(op, b"k").with_exptime(9_999);
            assert_eq!(
                h.route(&request),
                rewritten(Exptime::Set(300), 0, b""),
                "{op:?}"
            );
        }
        assert_eq!(h.policy().exptime(), Exptime::Set(300));
        let mut never = modify("exptime = 0");
        assert_eq!(
            never.route(&Request::new(Op::Set, b"k").with_exptime(60)),
            rewritten(Exptime::Set(0), 0, b"")
        );
    }

    #[test]
    fn exptime_is_capped() {
        let mut h = modify("max_exptime = 3600");
        assert_eq!(
            h.route(&Request::new(Op::Set, b"k")),
            rewritten(Exptime::Cap(3600), 0, b"")
        );
        let cap = modify(&format!("max_exptime = {RELATIVE_EXPTIME_LIMIT}"));
        assert_eq!(cap.policy().exptime(), Exptime::Cap(RELATIVE_EXPTIME_LIMIT));
    }

    #[test]
    fn keys_and_exptime_together() {
        let mut h = modify("strip_prefix = \"a:\"\nadd_prefix = \"b:\"\nmax_exptime = 60");
        assert_eq!(
            h.route(&Request::new(Op::Set, b"a:k")),
            rewritten(Exptime::Cap(60), 2, b"b:")
        );
        let mut h = modify("strip_prefix = \"a:\"\nexptime = 10");
        assert_eq!(
            h.route(&Request::new(Op::Touch, b"a:k")),
            rewritten(Exptime::Set(10), 2, b"")
        );
        // No key change for this key, but the exptime still is one.
        assert_eq!(
            h.route(&Request::new(Op::Touch, b"k")),
            rewritten(Exptime::Set(10), 0, b"")
        );
    }

    #[test]
    fn the_longest_prefix_fits_one_plan() {
        let prefix = "p".repeat(MAX_KEY_PREFIX);
        let mut h = modify(&format!("add_prefix = {prefix:?}"));
        assert_eq!(
            h.route(&Request::new(Op::Get, b"k")),
            rewritten(Exptime::Keep, 0, prefix.as_bytes())
        );
        // Non-ASCII bytes are key bytes.
        let mut h = modify(r#"add_prefix = "é:""#);
        assert_eq!(new_key(&mut h, b"k"), "é:k".as_bytes());
    }

    #[test]
    fn config_errors() {
        let err = |config: &str| Harness::<Modify>::new(config, ONE).expect_err(config);

        for children in [&[][..], &[("a", 1), ("b", 1)]] {
            let e = Harness::<Modify>::new("exptime = 1", children).expect_err("not one child");
            assert_eq!(
                e,
                format!(
                    "modify needs exactly one child; the node has {}",
                    children.len()
                )
            );
        }

        let e = err("");
        assert!(e.contains("modify changes nothing"), "{e}");
        let e = err(r#"strip_prefix = """#);
        assert!(e.contains("strip_prefix is empty"), "{e}");
        let e = err(r#"add_prefix = """#);
        assert!(e.contains("add_prefix is empty"), "{e}");
        let e = err(&format!(
            "add_prefix = {:?}",
            "p".repeat(MAX_KEY_PREFIX + 1)
        ));
        assert!(e.contains("add_prefix is 251 bytes"), "{e}");
        let e = err(r#"add_prefix = "a b""#);
        assert!(e.contains("has byte 0x20 at 1"), "{e}");
        let e = err(r#"add_prefix = "a\tb""#);
        assert!(e.contains("has byte 0x09 at 1"), "{e}");
        let e = err(r#"add_prefix = "ab\u007f""#);
        assert!(e.contains("has byte 0x7f at 2"), "{e}");

        let e = err("exptime = 10\nmax_exptime = 20");
        assert!(e.contains("exclude each other"), "{e}");
        let e = err("exptime = -1");
        assert!(e.contains("exptime is -1"), "{e}");
        let e = err("max_exptime = 0");
        assert!(e.contains("max_exptime is 0"), "{e}");
        let e = err(&format!("max_exptime = {}", RELATIVE_EXPTIME_LIMIT + 1));
        assert!(e.contains("max_exptime is 2592001 seconds"), "{e}");
        let e = err("max_exptime = -5");
        assert!(e.starts_with("invalid config: "), "{e}");
        let e = err("exptime = \"1h\"");
        assert!(e.starts_with("invalid config: "), "{e}");
        let e = err("prefix = \"a\"");
        assert!(e.contains("unknown field `prefix`"), "{e}");
    }
}
