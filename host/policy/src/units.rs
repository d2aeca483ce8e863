//! Parsers for the policy's typed values: sizes, durations, net patterns.
//! Each returns a message for the error; the caller adds file, line and key.
//! (`fc-host serve`'s configuration reads its sizes and durations alike.)

use std::net::IpAddr;
use std::time::Duration;

use crate::model::{HostPattern, NetPattern};

/// `1048576`, `"64KiB"`, `"256MiB"`, `"1GiB"`, `"512B"`. Zero is refused.
pub fn size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. `64MiB`, `1048576`)"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        u => return Err(format!("unknown size unit `{u}` (use B, KiB, MiB or GiB)")),
    };
    match n.checked_mul(mult) {
        Some(0) => Err("a size must be larger than 0".into()),
        Some(v) => Ok(v),
        None => Err(format!("`{text}` is too large")),
    }
}

/// `"500ms"`, `"30s"`, `"5m"`. Zero is refused.
pub fn duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. `500ms`, `30s`, `5m`)"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        u => {
            return Err(format!(
                "unknown duration unit `{u}` in `{text}` (use ms, s or m)"
            ));
        }
    };
    if d.is_zero() {
        Err("a duration must be longer than 0".into())
    } else {
        Ok(d)
    }
}

/// `scheme://host[:port]`: scheme `http` or `https`; host a DNS name, an IP
/// literal (IPv6 in brackets) or `*.name`; no path, query or credentials.
pub(crate) fn net_pattern(text: &str) -> Result<NetPattern, String> {
    if text.trim() == "*" || text.contains("://*") && !text.contains("://*.") {
        return Err(format!(
            "`{text}` would allow every host: list each destination as `scheme://host[:port]`"
        ));
    }
    let (scheme, rest) = text.split_once("://").ok_or_else(|| {
        format!("`{text}` must be `scheme://host[:port]`, e.g. `https://api.github.com`")
    })?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        s => return Err(format!("scheme `{s}` is not `http` or `https`")),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) || rest.is_empty() {
        return Err(format!(
            "`{text}` must name only `scheme://host[:port]` (no path, query or credentials)"
        ));
    }
    let (host, port) =
        split_host_port(rest).ok_or_else(|| format!("`{text}` has an invalid port"))?;
    let port = port.unwrap_or(default_port);
    let host = if let Ok(ip) = host.parse::<IpAddr>() {
        HostPattern::Ip(ip)
    } else if let Some(suffix) = host.strip_prefix("*.") {
        HostPattern::Subdomains(dns_name(suffix, text)?)
    } else {
        HostPattern::Name(dns_name(host, text)?)
    };
    Ok(NetPattern {
        scheme: scheme.to_owned(),
        host,
        port,
    })
}

fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(v6) = s.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            p => Some((
                host,
                Some(p.strip_prefix(':')?.parse().ok().filter(|p| *p != 0)?),
            )),
        };
    }
    match s.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok().filter(|p| *p != 0)?))),
        None => Some((s, None)),
    }
}

fn dns_name(name: &str, text: &str) -> Result<String, String> {
    let name = name.to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
        });
    if ok {
        Ok(name)
    } else {
        Err(format!("`{text}` does not name a valid host"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size("1048576"), Ok(1 << 20));
        assert_eq!(size("64MiB"), Ok(64 << 20));
        assert_eq!(size("2GiB"), Ok(2 << 30));
        for bad in [
            "0",
            "0MiB",
            "1GB",
            "-1",
            "MiB",
            "99999999999999999999GiB",
            "1.5MiB",
        ] {
            assert!(size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["0s", "30", "1h", "s", "-1s"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn net_patterns() {
        let p = net_pattern("https://API.github.com").unwrap();
        assert_eq!(
            (p.scheme.as_str(), &p.host, p.port),
            ("https", &HostPattern::Name("api.github.com".into()), 443)
        );
        assert_eq!(
            net_pattern("http://127.0.0.1:8080").unwrap().to_string(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            net_pattern("http://[::1]:81").unwrap().to_string(),
            "http://[::1]:81"
        );
        assert_eq!(
            net_pattern("https://*.example.com").unwrap().host,
            HostPattern::Subdomains("example.com".into())
        );
        for bad in [
            "*",
            "http://*",
            "https://*:443",
            "ftp://x",
            "api.github.com",
            "https://x/path",
            "https://u@x",
            "http://x:0",
            "http://x:99999",
            "http://",
            "http://bad_name",
        ] {
            assert!(net_pattern(bad).is_err(), "{bad}");
        }
    }
}
