//! Choosing a child: the selection schemes the bundled hashing plugins are built on, as plain
//! types a plugin embeds, so an author need not re-implement a ring.
//!
//! Each is built once, in `init`, from the children ([`InitContext`](crate::InitContext)
//! gives their names and weights), and asked per request with no allocation:
//!
//! - [`Ketama`]: consistent hashing as libketama and twemproxy place keys (points on a circle
//!   per child, in proportion to its weight), with a walk past children the host marks down.
//! - [`Jump`]: jump consistent hash (Lamping and Veach): no table, equal shares, growing by one
//!   child moves only the new child's share.
//! - [`Rendezvous`]: weighted rendezvous (highest random weight) hashing as mcrouter scores
//!   children, with a ranking for fallbacks.
//! - [`Modula`]: a hash modulo the total weight, as Cache::Memcached (the Perl client) does.
//! - [`Weighted`]: a child picked by a random number in proportion to the weights.
//!
//! ```
//! use switchyard_sdk::select::Ketama;
//! use switchyard_sdk::{HashAlgorithm, host};
//!
//! let ring = Ketama::new([("10.0.0.1:11211", 1), ("10.0.0.2:11211", 1)].into_iter())
//!     .expect("children");
//! let child = ring.lookup(host::hash(HashAlgorithm::Md5, b"user:42"));
//! assert!(child.0 < 2);
//! ```

mod jump;
mod ketama;
mod modula;
mod rendezvous;
mod weighted;

pub use jump::{Jump, jump, key_hash64};
pub use ketama::{Ketama, POINTS_PER_SERVER, points_for};
pub use modula::{Modula, modula_hash};
pub use rendezvous::{Rendezvous, hash_128_to_64, hash64, score};
pub use weighted::{Weighted, below};
