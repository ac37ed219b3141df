//! Answers every request with one fixed reply, without contacting any child: mcrouter's
//! `ErrorRoute` (a `SERVER_ERROR` with a message), generalised to any reply of the ABI. See
//! `README.md`.

use serde::Deserialize;
use switchyard_sdk::abi::PLAN_CAPACITY;
use switchyard_sdk::{InitContext, Plan, Policy, Reply, Request};

/// The reply when the config names none (one of [`Reply::NAMES`]): `server_error`, the reply of
/// mcrouter's `ErrorRoute` and the one every client treats as a failure of the server, not of
/// the request.
pub const DEFAULT_REPLY: &str = "server_error";

/// The message of an error reply when the config gives none: says which route answered, so
/// that an operator reading a client's log knows it was not a backend.
pub const DEFAULT_MESSAGE: &str = "error route";

/// The `config` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The reply, by name (one of [`Reply::NAMES`]); default [`DEFAULT_REPLY`]. A name rather
    /// than a `Reply` so that a bad one is reported with the list of names.
    #[serde(default)]
    pub reply: Option<String>,
    /// The message of a `server_error` or `client_error` reply; default [`DEFAULT_MESSAGE`].
    #[serde(default)]
    pub message: Option<String>,
}

/// The policy: the reply, decided once.
#[derive(Debug)]
pub struct ErrorRoute {
    /// The reply; an error reply's message is `message`, not this one's (empty).
    reply: Reply<'static>,
    message: String,
}

fn check_message(message: &str) -> Result<(), String> {
    if message.is_empty() {
        return Err("message is empty; leave it out for the default".into());
    }
    if let Some(bad) = message.chars().find(|c| !matches!(c, ' '..='~')) {
        return Err(format!(
            "message {message:?} has {bad:?}: a reply message must be printable ASCII"
        ));
    }
    if message.len() > PLAN_CAPACITY {
        return Err(format!(
            "message is {} bytes; a reply message holds at most {PLAN_CAPACITY}",
            message.len()
        ));
    }
    Ok(())
}

impl Policy for ErrorRoute {
    type Config = Config;

    fn init(config: Config, _ctx: &InitContext) -> Result<Self, String> {
        let name = config.reply.as_deref().unwrap_or(DEFAULT_REPLY);
        let reply = Reply::from_name(name, "").ok_or_else(|| {
            let names: Vec<_> = Reply::NAMES
                .iter()
                .map(|known| format!("{known:?}"))
                .collect();
            format!("unknown reply {name:?} (one of {})", names.join(", "))
        })?;
        let message = match config.message {
            Some(_) if reply.message().is_none() => {
                return Err(format!(
                    "a {name:?} reply has no message; only \"server_error\" and \"client_error\" do"
                ));
            }
            Some(message) => {
                check_message(&message)?;
                message
            }
            None => DEFAULT_MESSAGE.to_owned(),
        };
        Ok(Self { reply, message })
    }

    fn route<'a>(&'a mut self, _request: &Request<'_>) -> Plan<'a> {
        Plan::Reply(self.reply.with_message(&self.message))
    }
}

switchyard_sdk::export_policy!(ErrorRoute);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::{Decision, Harness};
    use switchyard_sdk::{Op, Request};

    use super::*;

    fn error(config: &str) -> Harness<ErrorRoute> {
        Harness::new(config, &[]).expect("valid config")
    }

    fn route(h: &mut Harness<ErrorRoute>, op: Op) -> Decision {
        h.route(&Request::new(op, b"key"))
    }

    #[test]
    fn default_is_server_error_error_route() {
        let mut h = error("");
        for op in [
            Op::Get,
            Op::Set,
            Op::Delete,
            Op::Incr,
            Op::MetaGet,
            Op::Other(25),
        ] {
            assert_eq!(
                route(&mut h, op),
                Decision::reply(Reply::ServerError("error route")),
                "{op:?}"
            );
        }
    }

    #[test]
    fn draining() {
        let mut h = error(
            r#"reply = "server_error"
message = "draining""#,
        );
        assert_eq!(
            route(&mut h, Op::Set),
            Decision::reply(Reply::ServerError("draining"))
        );
        let mut client = error(
            r#"reply = "client_error"
message = "this pool is read-only""#,
        );
        assert_eq!(
            route(&mut client, Op::Set),
            Decision::reply(Reply::ClientError("this pool is read-only"))
        );
    }

    #[test]
    fn every_reply_by_name() {
        for name in Reply::NAMES {
            let mut h = error(&format!("reply = {name:?}"));
            let expected = Reply::from_name(name, DEFAULT_MESSAGE).expect("known name");
            assert_eq!(route(&mut h, Op::Get), Decision::reply(expected), "{name}");
            assert_eq!(expected.name(), name);
        }
        let mut miss = error(r#"reply = "miss""#);
        assert_eq!(route(&mut miss, Op::Get), Decision::reply(Reply::Miss));
        let mut not_stored = error(r#"reply = "not_stored""#);
        assert_eq!(
            route(&mut not_stored, Op::Set),
            Decision::reply(Reply::NotStored)
        );
    }

    #[test]
    fn children_are_never_contacted() {
        let mut h = Harness::<ErrorRoute>::new("", &[("a", 1), ("b", 1)]).expect("config");
        assert_eq!(
            route(&mut h, Op::Get),
            Decision::reply(Reply::ServerError(DEFAULT_MESSAGE))
        );
    }

    #[test]
    fn config_errors() {
        let err = Harness::<ErrorRoute>::new(r#"reply = "sever_error""#, &[]).expect_err("name");
        assert_eq!(
            err,
            "unknown reply \"sever_error\" (one of \"miss\", \"not_stored\", \"stored\", \
             \"exists\", \"not_found\", \"deleted\", \"touched\", \"error\", \"server_error\", \
             \"client_error\")"
        );
        let err = Harness::<ErrorRoute>::new(
            r#"reply = "miss"
message = "x""#,
            &[],
        )
        .expect_err("message on miss");
        assert!(err.contains("a \"miss\" reply has no message"), "{err}");
        let err = Harness::<ErrorRoute>::new(r#"message = """#, &[]).expect_err("empty");
        assert!(err.contains("message is empty"), "{err}");
        let err = Harness::<ErrorRoute>::new("message = \"caf\u{e9}\"", &[]).expect_err("ascii");
        assert!(err.contains("printable ASCII"), "{err}");
        let err = Harness::<ErrorRoute>::new(r#"message = "a\r\nb""#, &[]).expect_err("newline");
        assert!(err.contains("printable ASCII"), "{err}");
        let long = format!("message = \"{}\"", "x".repeat(PLAN_CAPACITY + 1));
        let err = Harness::<ErrorRoute>::new(&long, &[]).expect_err("long");
        assert!(err.contains("at most 4096"), "{err}");
        let err = Harness::<ErrorRoute>::new("code = 8", &[]).expect_err("unknown key");
        assert!(err.contains("unknown field `code`"), "{err}");
    }
}
