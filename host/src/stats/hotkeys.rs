//! The hottest keys, found cheaply: each worker samples one keyed request in [`SAMPLE_EVERY`]
//! and counts the sampled keys with the Space-Saving algorithm (Metwally et al.) in a table of
//! [`CAPACITY`] keys, by requests and by bytes stored. `stats hotkeys` merges the workers'
//! tables and scales the counts back up.
//!
//! Space-Saving keeps the `CAPACITY` keys with the largest counts it has seen; a key that
//! arrives when the table is full takes the place of the smallest one and inherits its count
//! (so a count may be high by at most the smallest count in the table). Any key more frequent than 1/`CAPACITY` of the sampled
//! requests is guaranteed a place, which is what a hot key is.
//!
//! With tenants, a key is counted as its tenant's: two tenants' `user:1` are two keys, each
//! listed with its tenant's name (`tenant:<tenant>:requests:<key>`), and the ranking is of
//! every tenant's keys together.
//!
//! Cost on the request path: a counter and a branch per keyed request; per sampled one an
//! uncontended lock of the worker's own table (only `stats hotkeys` takes it from another
//! thread), one hash lookup, and when a new key displaces the smallest, a scan of the table's
//! counts. Memory: two tables of `CAPACITY` keys (at most 250 bytes each, and the tenant's
//! name) per worker. The key's buffer is reused when a key is displaced, so sampling allocates
//! nothing once the tables are full.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use super::registry;

/// One keyed request in this many is sampled.
pub const SAMPLE_EVERY: u32 = 8;
/// Keys each table keeps.
const CAPACITY: usize = 64;
/// Keys `stats hotkeys` lists per table.
const LISTED: usize = 20;

/// A Space-Saving summary: `CAPACITY` keys and counts, found by a hash of the tenant's name
/// and the key. The entries and the index are allocated once; a key that displaces another
/// takes over its buffer, so nothing is allocated once the table is full.
#[derive(Debug)]
struct Summary {
    entries: Vec<Entry>,
    /// Hash of an entry's key → its place in `entries`.
    index: HashMap<u64, usize>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for Summary {
    fn default() -> Summary {
        Summary {
            entries: Vec::with_capacity(CAPACITY),
            index: HashMap::with_capacity(CAPACITY + 1),
            hasher: Default::default(),
        }
    }
}

/// One counted key: its tenant's name (empty for no tenant's) then the key, in one buffer.
#[derive(Debug)]
struct Entry {
    held: Vec<u8>,
    /// Where the key starts in `held`.
    tenant_len: usize,
    count: u64,
}

impl Entry {
    fn tenant(&self) -> &[u8] {
        &self.held[..self.tenant_len]
    }

    fn key(&self) -> &[u8] {
        &self.held[self.tenant_len..]
    }

    fn hold(&mut self, tenant: &[u8], key: &[u8]) {
        self.held.clear();
        self.held.extend_from_slice(tenant);
        self.held.extend_from_slice(key);
        self.tenant_len = tenant.len();
    }
}

impl Summary {
    fn add(&mut self, tenant: &[u8], key: &[u8], weight: u64) {
        use std::hash::BuildHasher as _;
        let hash = self.hasher.hash_one((tenant, key));
        if let Some(&i) = self.index.get(&hash)
            && let Some(entry) = self.entries.get_mut(i)
            && entry.tenant() == tenant
            && entry.key() == key
        {
            entry.count += weight;
            return;
        }
        if self.entries.len() < CAPACITY {
            self.index.insert(hash, self.entries.len());
            let mut entry = Entry {
                held: Vec::with_capacity(tenant.len() + key.len()),
                tenant_len: 0,
                count: weight,
            };
            entry.hold(tenant, key);
            self.entries.push(entry);
            return;
        }
        // The smallest count gives up its place, and its count, to the new key.
        let Some((i, smallest)) = self
            .entries
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.count)
            .map(|(i, e)| (i, e.count))
        else {
            return;
        };
        let entry = &mut self.entries[i];
        let old = self.hasher.hash_one((entry.tenant(), entry.key()));
        if self.index.get(&old) == Some(&i) {
            self.index.remove(&old);
        }
        entry.hold(tenant, key);
        entry.count = smallest + weight;
        self.index.insert(hash, i);
    }

    /// Each key's tenant (empty: none), key and count.
    fn each(&self) -> impl Iterator<Item = (&[u8], &[u8], u64)> {
        self.entries.iter().map(|e| (e.tenant(), e.key(), e.count))
    }
}

/// One worker's tables.
#[derive(Debug, Default)]
struct Tables {
    requests: Summary,
    bytes: Summary,
    sampled: u64,
}

/// A key as `stats hotkeys` merges the workers' tables: its tenant's name (empty: none's) and
/// the key.
type Owned = (Vec<u8>, Vec<u8>);

/// Every worker's hot-key tables.
#[derive(Debug)]
pub struct HotKeys {
    workers: Box<[Mutex<Tables>]>,
}

impl HotKeys {
    /// Tables for `workers` workers.
    pub fn new(workers: usize) -> HotKeys {
        HotKeys {
            workers: (0..workers.max(1))
                .map(|_| Mutex::new(Tables::default()))
                .collect(),
        }
    }

    /// Counts a sampled request for `key` (as its client sent it) of the tenant named `tenant`
    /// (empty: of no tenant) on `worker`, which stores `value_bytes` (0 for anything but a
    /// store).
    pub fn sample(&self, worker: usize, tenant: &str, key: &[u8], value_bytes: u64) {
        let Some(tables) = self.workers.get(worker) else {
            return;
        };
        let mut tables = tables.lock().unwrap_or_else(|e| e.into_inner());
        tables.sampled += 1;
        tables.requests.add(tenant.as_bytes(), key, 1);
        if value_bytes > 0 {
            tables.bytes.add(tenant.as_bytes(), key, value_bytes);
        }
    }

    /// `stats hotkeys`: the sampling rate, the requests sampled, and the hottest keys by
    /// requests (`requests:<key> <estimated requests>`, a tenant's
    /// `tenant:<tenant>:requests:<key>`) and by bytes stored (`bytes:<key> <estimated
    /// bytes>`, `tenant:<tenant>:bytes:<key>`), hottest first, counts scaled back up by the
    /// sampling rate.
    pub fn render(&self) -> String {
        let mut requests: HashMap<Owned, u64> = HashMap::new();
        let mut bytes: HashMap<Owned, u64> = HashMap::new();
        let mut sampled = 0;
        for tables in self.workers.iter() {
            let tables = tables.lock().unwrap_or_else(|e| e.into_inner());
            sampled += tables.sampled;
            for (into, summary) in [
                (&mut requests, &tables.requests),
                (&mut bytes, &tables.bytes),
            ] {
                for (tenant, key, count) in summary.each() {
                    *into.entry((tenant.to_vec(), key.to_vec())).or_default() += count;
                }
            }
        }
        let mut out = String::with_capacity(128 * LISTED);
        let _ = write!(
            out,
            "STAT {} {SAMPLE_EVERY}\r\nSTAT {} {sampled}\r\n",
            registry::HOTKEYS_SAMPLE_EVERY.name,
            registry::HOTKEYS_SAMPLED.name
        );
        for (def, tenant_def, counts) in [
            (
                &registry::HOTKEY_REQUESTS,
                &registry::HOTKEY_TENANT_REQUESTS,
                requests,
            ),
            (
                &registry::HOTKEY_BYTES,
                &registry::HOTKEY_TENANT_BYTES,
                bytes,
            ),
        ] {
            let mut ranked: Vec<(Owned, u64)> = counts.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            for ((tenant, key), count) in ranked.into_iter().take(LISTED) {
                let name = if tenant.is_empty() {
                    def.name.replacen("<key>", &printable(&key), 1)
                } else {
                    tenant_def
                        .name
                        .replacen("<tenant>", &printable(&tenant), 1)
                        .replacen("<key>", &printable(&key), 1)
                };
                let _ = write!(out, "STAT {name} {}\r\n", count * u64::from(SAMPLE_EVERY));
            }
        }
        out.push_str("END\r\n");
        out
    }
}

/// A key as one token of a `STAT` line: printable ASCII as is, every other byte as `\xNN`.
pub(crate) fn printable(key: &[u8]) -> String {
    let mut text = String::with_capacity(key.len());
    for &b in key {
        if b.is_ascii_graphic() && b != b'\\' {
            text.push(b as char);
        } else {
            let _ = write!(text, "\\x{b:02x}");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_at_a_fifth_of_the_requests_ranks_first_among_thousands() {
        let hot = HotKeys::new(2);
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for i in 0..50_000u64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let key = if i % 5 == 0 {
                b"hot".to_vec()
            } else {
                format!("cold:{}", rng % 10_000).into_bytes()
            };
            hot.sample((i % 2) as usize, "", &key, if i % 3 == 0 { 100 } else { 0 });
        }
        let text = hot.render();
        let first = text
            .lines()
            .find(|l| l.starts_with("STAT requests:"))
            .unwrap_or_default();
        assert!(first.starts_with("STAT requests:hot "), "{text}");
        let estimate: u64 = first
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_default();
        // 10,000 of 50,000 sampled, scaled by the rate, plus at most the inherited error.
        let exact = 10_000 * u64::from(SAMPLE_EVERY);
        assert!(
            exact <= estimate && estimate <= exact * 6 / 5,
            "estimate {estimate} for {exact}"
        );
        assert!(text.contains("STAT hotkeys_sampled 50000\r\n"));
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("STAT requests:"))
                .count(),
            LISTED
        );
    }

    #[test]
    fn two_tenants_same_key_are_two_keys_each_named_with_its_tenant() {
        let hot = HotKeys::new(1);
        for _ in 0..3 {
            hot.sample(0, "alpha", b"user:1", 10);
        }
        hot.sample(0, "beta", b"user:1", 0);
        hot.sample(0, "", b"user:1", 0);
        hot.sample(0, "", b"user:1", 0);
        let text = hot.render();
        let every = u64::from(SAMPLE_EVERY);
        for line in [
            format!("STAT tenant:alpha:requests:user:1 {}\r\n", 3 * every),
            format!("STAT requests:user:1 {}\r\n", 2 * every),
            format!("STAT tenant:beta:requests:user:1 {every}\r\n"),
            format!("STAT tenant:alpha:bytes:user:1 {}\r\n", 30 * every),
        ] {
            assert!(text.contains(&line), "{line} in {text}");
        }
        // Hottest first, whoever's.
        let order: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("requests:"))
            .map(|l| l.split(' ').nth(1).unwrap_or_default())
            .collect();
        assert_eq!(
            order,
            [
                "tenant:alpha:requests:user:1",
                "requests:user:1",
                "tenant:beta:requests:user:1"
            ]
        );
    }

    #[test]
    fn keys_are_printed_as_one_token() {
        assert_eq!(printable(b"user:1"), "user:1");
        assert_eq!(printable(b"a b\\\x00\xff"), "a\\x20b\\x5c\\x00\\xff");
    }
}
