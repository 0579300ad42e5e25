//! Addresses a remote provider must not point at unless the config says so: link-local
//! ranges, where cloud metadata services answer (169.254.169.254 and friends) and where a
//! gateway reaching out on a caller's behalf could leak its host's credentials.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why `ip` is refused as a remote endpoint's address, if it is: 169.254.0.0/16, fe80::/10,
/// the IPv4-mapped and IPv4-compatible forms of the former, and the IPv6 metadata address
/// fd00:ec2::254.
pub fn forbidden_ip(ip: IpAddr) -> Option<&'static str> {
    const AWS_IMDS_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);
    let link_local_v4 = |v4: Ipv4Addr| v4.is_link_local();
    match ip.to_canonical() {
        IpAddr::V4(v4) if link_local_v4(v4) => {
            Some("a link-local address (169.254.0.0/16, where cloud metadata services answer)")
        }
        IpAddr::V4(_) => None,
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some("a link-local address (fe80::/10)"),
        IpAddr::V6(v6) if v6 == AWS_IMDS_V6 => Some("a cloud metadata address (fd00:ec2::254)"),
        // ::a9fe:a9fe, the deprecated IPv4-compatible form.
        IpAddr::V6(v6) if v6.to_ipv4().is_some_and(link_local_v4) => {
            Some("a link-local address (169.254.0.0/16, IPv4-compatible form)")
        }
        IpAddr::V6(_) => None,
    }
}

/// Why an endpoint URL whose host is an IP literal is refused, if it is (see
/// [`forbidden_ip`]). Host names are checked when they are resolved, at connect time.
pub fn forbidden_endpoint(endpoint: &str) -> Option<String> {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let ip: IpAddr = host.parse().ok()?;
    forbidden_ip(ip).map(|why| {
        format!("points at {ip}, {why}; set allow_link_local: true to allow it on purpose")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_and_metadata_addresses_are_refused() {
        for bad in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "febf::1",
            "::ffff:169.254.169.254",
            "::a9fe:a9fe",
            "fd00:ec2::254",
        ] {
            let ip: IpAddr = bad.parse().unwrap_or_else(|e| panic!("{bad}: {e}"));
            assert!(forbidden_ip(ip).is_some(), "{bad}");
        }
        for good in [
            "127.0.0.1",
            "10.0.0.1",
            "8.8.8.8",
            "::1",
            "fec0::1",
            "2001:db8::1",
        ] {
            let ip: IpAddr = good.parse().unwrap_or_else(|e| panic!("{good}: {e}"));
            assert!(forbidden_ip(ip).is_none(), "{good}");
        }
    }

    #[test]
    fn endpoints_with_forbidden_literals() {
        for bad in [
            "http://169.254.169.254/latest/meta-data",
            "https://user:pw@169.254.169.254:8080/mcp",
            "http://[fe80::1]:80/mcp",
            "http://[::ffff:169.254.169.254]/mcp",
        ] {
            let why = forbidden_endpoint(bad).unwrap_or_default();
            assert!(why.contains("allow_link_local"), "{bad}: {why}");
        }
        for good in [
            "http://127.0.0.1:8080/mcp",
            "https://mcp.example.com/mcp",
            "http://[::1]:9/mcp",
            "http://metadata.example/mcp",
        ] {
            assert_eq!(forbidden_endpoint(good), None, "{good}");
        }
    }
}
