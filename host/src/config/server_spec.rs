//! Server strings in twemproxy's format: `host:port[:weight] [name]`.

use std::net::{SocketAddr, ToSocketAddrs};

/// The port libmemcached and twemproxy leave out of a server's ketama name.
const KETAMA_DEFAULT_PORT: u16 = 11211;

/// One server of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// Resolved address (the first the resolver returns).
    pub address: SocketAddr,
    /// The host as written (`cache-a.local`, `10.0.0.1`, `::1`): the name a TLS server's
    /// certificate is checked against unless the pool names another.
    pub host: String,
    /// Relative share of the keyspace; 1 when not given.
    pub weight: u32,
    /// The name consistent hashing places on the ring. When the string gives none, it is what
    /// twemproxy uses: `host` for port 11211 (libmemcached compatibility) and `host:port`
    /// otherwise, with `host` exactly as written.
    pub name: String,
}

/// Parses `host:port[:weight] [name]`; IPv6 hosts are bracketed (`[::1]:11211`).
pub fn parse(spec: &str) -> Result<ServerSpec, String> {
    let spec = spec.trim();
    let (addr_part, explicit_name) = match spec.split_once(char::is_whitespace) {
        Some((addr, name)) => (addr, Some(name.trim())),
        None => (spec, None),
    };
    let (host, rest) = if let Some(stripped) = addr_part.strip_prefix('[') {
        let (host, rest) = stripped
            .split_once(']')
            .ok_or_else(|| format!("`{addr_part}`: unclosed `[` in IPv6 address"))?;
        let rest = rest
            .strip_prefix(':')
            .ok_or_else(|| format!("`{addr_part}`: expected `:port` after `]`"))?;
        (host, rest)
    } else {
        addr_part
            .split_once(':')
            .ok_or_else(|| format!("`{addr_part}`: expected host:port[:weight]"))?
    };
    if host.is_empty() {
        return Err(format!("`{addr_part}`: empty host"));
    }
    let (port_str, weight_str) = match rest.split_once(':') {
        Some((p, w)) => (p, Some(w)),
        None => (rest, None),
    };
    let port: u16 = port_str
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("`{addr_part}`: `{port_str}` is not a port (1-65535)"))?;
    let weight = match weight_str {
        None => 1,
        Some(w) => w
            .parse::<u32>()
            .ok()
            .filter(|w| *w > 0)
            .ok_or_else(|| format!("`{addr_part}`: weight `{w}` is not a positive integer"))?,
    };
    let address = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("`{host}`: cannot resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("`{host}`: resolves to no address"))?;
    let name = match explicit_name {
        Some(name) if !name.is_empty() => name.to_string(),
        _ if port == KETAMA_DEFAULT_PORT => host.to_string(),
        _ => format!("{host}:{port}"),
    };
    Ok(ServerSpec {
        address,
        host: host.to_string(),
        weight,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_defaults_weight_and_names_like_twemproxy() {
        let s = parse("127.0.0.1:21211").expect("valid");
        assert_eq!(s.address, "127.0.0.1:21211".parse().expect("addr"));
        assert_eq!(s.weight, 1);
        assert_eq!(s.name, "127.0.0.1:21211");
    }

    #[test]
    fn port_11211_is_left_out_of_the_name() {
        assert_eq!(parse("127.0.0.1:11211:3").expect("valid").name, "127.0.0.1");
    }

    #[test]
    fn weight_and_explicit_name() {
        let s = parse("127.0.0.1:21212:2 cache-b").expect("valid");
        assert_eq!((s.weight, s.name.as_str()), (2, "cache-b"));
    }

    #[test]
    fn ipv6_in_brackets() {
        let s = parse("[::1]:21211").expect("valid");
        assert_eq!(s.address, "[::1]:21211".parse().expect("addr"));
        assert_eq!(s.name, "::1:21211");
    }

    #[test]
    fn rejects_what_is_not_a_server() {
        for bad in [
            "127.0.0.1",
            "127.0.0.1:0",
            "127.0.0.1:99999",
            "127.0.0.1:21211:0",
            "127.0.0.1:21211:x",
            ":21211",
            "[::1:21211",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
