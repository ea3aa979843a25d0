//! The outbound address policy: which addresses pushes and webhooks may reach.
//!
//! Loopback, private, shared, link-local, unspecified, broadcast, multicast and documentation
//! ranges are refused unless an allowed CIDR covers them. Hosts apply [`TargetPolicy::allows`]
//! to the address they actually connect to; the engine applies it to literal addresses in URLs
//! at registration.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parse `ADDR/PREFIX` or a bare address (a single host).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr =
            IpAddr::from_str(a).map_err(|_| format!("{s:?} is not an IP address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("{s:?} has an invalid prefix length")),
            },
        };
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside the range (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Whether an address is in a range refused by default.
pub fn is_restricted(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(a) => restricted_v4(a),
        IpAddr::V6(a) => restricted_v6(a),
    }
}

fn restricted_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || a.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 shared address space
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
        || o[0] >= 240 // reserved
}

fn restricted_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 may reach private IPv4
}

/// Why a URL whose host the parser's domain-name processing refused is not valid: a non-ASCII
/// name (this build has no Unicode IDNA data), a label that is not valid Punycode after `xn--`,
/// or a character that a domain name cannot hold (such as a space).
const NOT_AN_ASCII_DOMAIN: &str = "not a valid URL: the host is not a valid ASCII domain name \
     (a non-ASCII name must be written in its xn-- Punycode form, e.g. xn--bcher-kva.example \
     for bücher.example)";

/// The set of ranges allowed despite being restricted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Ranges allowed explicitly (`--allow-target-cidr`).
    pub allowed: Vec<Cidr>,
}

impl TargetPolicy {
    /// Whether an outbound connection to `ip` is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        !is_restricted(ip) || self.allowed.iter().any(|c| c.contains(ip))
    }

    /// Check a push or webhook URL at registration: `http`/`https`, a host, and, when the host
    /// is a literal address, an allowed one. Answers the URL as parsed (normalized, e.g.
    /// `https:///x` becomes `https://x/`), which is what must be stored and used, or the
    /// reason when refused.
    ///
    /// Host names must be ASCII: the URL parser is built without Unicode IDNA data (the
    /// `idna_adapter` pin in the workspace Cargo.toml), so a non-ASCII name such as
    /// `bücher.example` is refused and its Punycode form `xn--bcher-kva.example` is accepted.
    pub fn check_url(&self, raw: &str) -> Result<String, String> {
        let u = url::Url::parse(raw).map_err(|e| match e {
            url::ParseError::IdnaError => NOT_AN_ASCII_DOMAIN.to_string(),
            e => format!("not a valid URL: {e}"),
        })?;
        if u.scheme() != "http" && u.scheme() != "https" {
            return Err("the URL must use http or https".into());
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err("the URL must not carry credentials".into());
        }
        match u.host() {
            None => Err("the URL has no host".into()),
            Some(url::Host::Ipv4(a)) if !self.allows(IpAddr::V4(a)) => Err(format!(
                "{a} is a refused address (loopback, private, link-local or reserved)"
            )),
            Some(url::Host::Ipv6(a)) if !self.allows(IpAddr::V6(a)) => Err(format!(
                "{a} is a refused address (loopback, private, link-local or reserved)"
            )),
            Some(_) => {
                let mut normalized = u.to_string();
                // Keep `https://host` as written rather than `https://host/`: base URLs are
                // joined with paths.
                if u.path() == "/" && u.query().is_none() && !raw.trim_end().ends_with('/') {
                    normalized.pop();
                }
                Ok(normalized)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        IpAddr::from_str(s).unwrap()
    }

    #[test]
    fn restricted_ranges() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "255.255.255.255",
        ] {
            assert!(is_restricted(ip(a)), "{a}");
        }
        for a in ["93.184.216.34", "2606:4700::1111", "172.32.0.1", "8.8.8.8"] {
            assert!(!is_restricted(ip(a)), "{a}");
        }
    }

    #[test]
    fn cidr_contains_and_policy() {
        let c = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(c.contains(ip("127.5.6.7")));
        assert!(c.contains(ip("::ffff:127.0.0.1")));
        assert!(!c.contains(ip("128.0.0.1")));
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
        let p = TargetPolicy { allowed: vec![c] };
        assert!(p.allows(ip("127.0.0.1")));
        assert!(!p.allows(ip("10.0.0.1")));
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("1.2.3.4")));
    }

    #[test]
    fn url_checks() {
        let p = TargetPolicy::default();
        assert!(p.check_url("https://hooks.example.com/x").is_ok());
        assert_eq!(
            p.check_url("https:///hooks.example.com").unwrap(),
            "https://hooks.example.com"
        );
        assert_eq!(
            p.check_url("https://h.example.com/").unwrap(),
            "https://h.example.com/"
        );
        assert_eq!(
            p.check_url("HTTPS://H.example.com/a b").unwrap(),
            "https://h.example.com/a%20b"
        );
        assert!(p.check_url("http://localhost:9/x").is_ok()); // names are checked at connect time
        assert!(p.check_url("http://127.0.0.1:9/x").is_err());
        assert!(p.check_url("http://[::1]:9/x").is_err());
        assert!(p.check_url("ftp://example.com/").is_err());
        assert!(p.check_url("http://u:p@example.com/").is_err());
        assert!(p.check_url("not a url").is_err());
        let p = TargetPolicy {
            allowed: vec![Cidr::parse("127.0.0.0/8").unwrap()],
        };
        assert!(p.check_url("http://127.0.0.1:9/x").is_ok());
    }

    #[test]
    fn hosts_must_be_ascii() {
        let p = TargetPolicy::default();
        for raw in [
            "https://bücher.example/push",
            "https://b%C3%BCcher.example/push", // percent-encoded, decoded before the check
            "https://ＥＸＡＭＰＬＥ.com/push",  // fullwidth letters
            "https://xn--zz.example/push",      // not valid Punycode
            "https://exa mple.com/push",
        ] {
            assert_eq!(
                p.check_url(raw),
                Err(NOT_AN_ASCII_DOMAIN.to_string()),
                "{raw}"
            );
        }
        // The Punycode form of a non-ASCII name is accepted, also in upper case.
        assert_eq!(
            p.check_url("https://xn--bcher-kva.example/push"),
            Ok("https://xn--bcher-kva.example/push".to_string())
        );
        assert_eq!(
            p.check_url("https://XN--BCHER-KVA.Example/push"),
            Ok("https://xn--bcher-kva.example/push".to_string())
        );
        // Non-ASCII text outside the host is percent-encoded as before.
        assert_eq!(
            p.check_url("https://hooks.example.com/bücher?q=é"),
            Ok("https://hooks.example.com/b%C3%BCcher?q=%C3%A9".to_string())
        );
    }
}
