//! Sans-IO memcached text protocol, as memcached 1.6 speaks it: client requests in, backend
//! replies in, request lines out. No sockets, no async, no allocation per request: every parser
//! takes the bytes received so far and says how many of them one message occupies.
//!
//! # Codemap
//! - [`limits`]: the sizes a request may have ([`Limits`]).
//! - [`request`]: what a client may send ([`Command`], [`Request`]) and [`parse_request`],
//!   whose outcome ([`Parsed`]) also says what memcached would answer to bad input and how many
//!   bytes it would drop. One file per command family under `request/`:
//!   - `request/line.rs` finds the command line, and closes on a runaway one;
//!   - `request/tokens.rs` splits it the way memcached does (on spaces only);
//!   - `request/number.rs` reads numbers the way memcached's `safe_strto*` helpers do;
//!   - `request/command.rs` the [`Command`]s, the operation a plugin routes each as
//!     ([`Command::op`], the SDK's `Op`), and which replies a meta `q` flag hushes
//!     ([`Command::quiet_hides`]);
//!   - `request/retrieval.rs` `get gets gat gats`; `request/storage.rs` `set add replace
//!     append prepend cas`; `request/keyed.rs` `delete incr decr touch`; `request/admin.rs`
//!     `version quit stats flush_all verbosity`;
//!   - `request/meta.rs` the meta commands `mg md ma mn me`, `request/meta/set.rs` `ms`,
//!     `request/meta/flags.rs` their flags.
//! - [`base64`]: meta keys with the `b` flag, decoded as memcached decodes them
//!   ([`decode_key`]), for routing.
//! - [`replies`]: the fixed reply lines, byte for byte.
//! - [`reply`]: what a memcached server answers ([`parse_reply`], classifying each reply as a
//!   [`ReplyStatus`], the status type the router shares with its plugins, owned by
//!   `switchyard-sdk` with its ABI code); `reply/values.rs` the `VALUE` entries of a retrieval
//!   reply ([`values`]); `reply/meta.rs` the replies to meta commands.
//! - [`framing`]: a connection's input, minus the I/O ([`Framer`]): the next request, the
//!   bytes of a refused data block to drop, an endless line or a binary-protocol client to
//!   close on.
//! - [`compose`]: writing request lines for a backend (forwarding without `noreply` or `q`,
//!   batching the keys of a multi-get, rewriting a request).
//!
//! Tests: unit tests at the bottom of each file; `tests/memcached.rs`, every wire case checked
//! against a real memcached 1.6.18 (and replayable against one); `tests/properties.rs`, property
//! tests of both parsers and of a session fed its input in pieces.
//!
//! Ranges in a [`Request`] or a [`ValueEntry`] index the buffer that was parsed, so a caller that
//! freezes that buffer into a `bytes::Bytes` slices keys and values out of it without copying.
#![forbid(unsafe_code)]

pub mod base64;
pub mod compose;
pub mod framing;
pub mod limits;
pub mod replies;
pub mod reply;
pub mod request;

pub use base64::{DECODED_KEY_BUF, decode_key, encode_key};
pub use framing::{Framed, Framer};
pub use limits::Limits;
pub use reply::{
    ReplyKind, ReplyParsed, ReplyStatus, ValueEntry, ValueHead, parse_reply, value_head, values,
};
pub use request::{Command, Parsed, Request, parse_request};
