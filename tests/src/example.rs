//! The example configs of `configs/`, run as they are written except for addresses: every
//! `127.0.0.1:PORT` server in the file becomes a test memcached on a free port, and every
//! listener a free port of its own, so the tests exercise the files users run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Memcached, Router, router};

/// An example config with a memcached for each server it names.
#[derive(Debug)]
pub struct Example {
    /// The servers, by the port the file gives them.
    pub servers: BTreeMap<u16, Memcached>,
    /// The router, on the rewritten file.
    pub router: Router,
}

impl Example {
    /// Starts `configs/<name>.toml`.
    pub fn start(name: &str) -> Example {
        Example::start_edited(name, |text| text.to_owned())
    }

    /// Starts `configs/<name>.toml` as `edit` changes it (to move a date, or turn a feature
    /// off for a baseline run); panics if the edit changed nothing.
    pub fn start_edited(name: &str, edit: impl FnOnce(&str) -> String) -> Example {
        let original = example_text(name);
        let text = edit(&original);
        let (servers, rewritten) = substitute(&text);
        let router = router(&rewritten);
        Example { servers, router }
    }

    /// The memcached the file places on `port`.
    pub fn server(&self, port: u16) -> &Memcached {
        self.servers
            .get(&port)
            .unwrap_or_else(|| panic!("the example names no server on port {port}"))
    }

    /// The memcached the file places on `port`, to stop or restart.
    pub fn server_mut(&mut self, port: u16) -> &mut Memcached {
        self.servers
            .get_mut(&port)
            .unwrap_or_else(|| panic!("the example names no server on port {port}"))
    }

    /// The servers on these ports.
    pub fn pool(&self, ports: &[u16]) -> Vec<&Memcached> {
        ports.iter().map(|&p| self.server(p)).collect()
    }
}

/// Path of `configs/<name>.toml`.
pub fn example_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../configs")
        .join(format!("{name}.toml"))
}

/// The text of `configs/<name>.toml`.
pub fn example_text(name: &str) -> String {
    let path = example_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replaces every `address = "127.0.0.1:PORT"` by port 0 and every other `127.0.0.1:PORT` (a
/// server) by a fresh memcached; returns the servers and the new text.
fn substitute(text: &str) -> (BTreeMap<u16, Memcached>, String) {
    const HOST: &str = "127.0.0.1:";
    let mut servers = BTreeMap::new();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let is_listener = line.trim_start().starts_with("address");
        let mut rest = line;
        while let Some(at) = rest.find(HOST) {
            out.push_str(&rest[..at + HOST.len()]);
            rest = &rest[at + HOST.len()..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let port: u16 = rest[..digits].parse().expect("a port after 127.0.0.1:");
            rest = &rest[digits..];
            if is_listener {
                out.push('0');
            } else {
                let server = servers.entry(port).or_insert_with(Memcached::start);
                out.push_str(&server.port().to_string());
            }
        }
        out.push_str(rest);
        out.push('\n');
    }
    (servers, out)
}
