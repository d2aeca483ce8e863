//! Safety of a capability's network grant: from inside the sandbox, the
//! probe asks for destinations next to each `net` pattern (neighbouring
//! ports, the other scheme, a name one label off), for private, loopback
//! and cloud-metadata addresses the grant does not name, and for a raw TCP
//! connection. Every one must be refused by the host before it connects:
//! the gate refuses a destination no pattern names without a name lookup
//! and without a packet, and the probe's gate decides only (it never
//! connects, even to what it would let through). Redirects are not probed: `wasi:http` does not
//! follow them, and a guest that does sends a new request, checked again.

use std::net::IpAddr;

use femtoclaw_policy::{CapabilityGrant, HostPattern, NetPattern};
use serde_json::json;

use super::probe::Probe;
use super::report::{Report, Verdict};
use super::safety::SECTION;

pub async fn check(
    probe: &mut Probe,
    name: &str,
    grant: &CapabilityGrant,
    report: &mut Report,
) -> anyhow::Result<()> {
    for pattern in &grant.net {
        let subject = format!("capabilities.{name}.net {pattern}");
        let urls = neighbours(pattern);
        let (verdict, detail) = refused(probe, &urls, &grant.net).await?;
        report.add(
            SECTION,
            "neighbouring destinations are refused",
            subject,
            verdict,
            detail,
        );
    }
    let port = grant.net.first().map_or(80, |p| p.port);
    let subject = format!("capabilities.{name}.net");
    let special = [
        "http://169.254.169.254/".to_owned(),
        format!("http://127.0.0.1:{port}/"),
        format!("http://[::1]:{port}/"),
        "http://10.0.0.1/".to_owned(),
        "http://192.168.0.1/".to_owned(),
    ];
    let (verdict, detail) = match link_local(&grant.net) {
        // Granted, so not refused: but no capability should reach where
        // clouds serve instance credentials.
        Some(pattern) => (
            Verdict::Fail,
            format!(
                "the grant names `{pattern}`, a link-local address, where clouds serve instance metadata and credentials"
            ),
        ),
        None => refused(probe, &special, &grant.net).await?,
    };
    report.add(
        SECTION,
        "private and metadata addresses are refused",
        &subject,
        verdict,
        detail,
    );

    let answer = probe.call("tcp", json!({ "port": port })).await?;
    let connected = answer.as_ref().is_ok_and(|a| a["connected"] == true);
    let detail = match &answer {
        Ok(a) if !connected => super::shorten(a["error"].as_str().unwrap_or("refused"), 160),
        Ok(_) => format!("a TCP connection to 127.0.0.1:{port} was opened"),
        Err(e) => super::shorten(e, 160),
    };
    let verdict = if connected {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    report.add(
        SECTION,
        "raw sockets are refused",
        &subject,
        verdict,
        detail,
    );
    Ok(())
}

/// Asks for each URL the grant does not name; all must be refused.
async fn refused(
    probe: &mut Probe,
    urls: &[String],
    granted: &[NetPattern],
) -> anyhow::Result<(Verdict, String)> {
    let mut tried = 0;
    let mut out = Vec::new();
    for url in urls.iter().filter(|u| !names(granted, u)) {
        tried += 1;
        let answer = probe.call("http", json!({ "url": url })).await?;
        match answer {
            Ok(a) if a["outcome"] == json!("denied") || a["outcome"] == json!("prohibited") => {}
            Ok(a) => out.push(format!("{url} ({})", a["outcome"].as_str().unwrap_or("?"))),
            Err(e) => out.push(format!("{url} ({})", super::shorten(&e, 60))),
        }
    }
    Ok(if out.is_empty() {
        (
            Verdict::Pass,
            format!("{tried} destinations refused before connecting"),
        )
    } else {
        (Verdict::Fail, format!("let out: {}", out.join(", ")))
    })
}

/// The first pattern naming a link-local address (169.254.0.0/16,
/// fe80::/10), where cloud instance metadata lives.
fn link_local(granted: &[NetPattern]) -> Option<&NetPattern> {
    granted.iter().find(|p| match p.host {
        HostPattern::Ip(IpAddr::V4(ip)) => ip.is_link_local(),
        HostPattern::Ip(IpAddr::V6(ip)) => ip.segments()[0] & 0xffc0 == 0xfe80,
        _ => false,
    })
}

/// Destinations one step away from what the pattern names.
fn neighbours(p: &NetPattern) -> Vec<String> {
    let host = match &p.host {
        HostPattern::Name(n) | HostPattern::Subdomains(n) => n.clone(),
        HostPattern::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
        HostPattern::Ip(ip) => ip.to_string(),
    };
    let other = if p.scheme == "https" { "http" } else { "https" };
    let mut urls = vec![format!("{other}://{host}:{}/", p.port)];
    for port in [p.port.checked_sub(1), p.port.checked_add(1)]
        .into_iter()
        .flatten()
        .filter(|&q| q > 0)
    {
        urls.push(format!("{}://{host}:{port}/", p.scheme));
    }
    match &p.host {
        // A subdomain of an exact name, a name that merely ends like it.
        HostPattern::Name(n) => {
            urls.push(format!("{}://probe.{n}:{}/", p.scheme, p.port));
            urls.push(format!("{}://probe{n}:{}/", p.scheme, p.port));
        }
        // The bare name under a subdomain pattern.
        HostPattern::Subdomains(n) => urls.push(format!("{}://{n}:{}/", p.scheme, p.port)),
        HostPattern::Ip(_) => {}
    }
    urls
}

/// Whether a pattern of the grant names the URL's destination (then it is
/// granted, and not a probe's business).
fn names(granted: &[NetPattern], url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    // `[v6]:port`, `name:port`, or either without a port.
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') && p.parse::<u16>().is_ok() => (h, p.parse().ok()),
        _ => (authority, None),
    };
    let host = host.trim_matches(['[', ']']);
    let port = port.unwrap_or(if scheme == "https" { 443 } else { 80 });
    granted.iter().any(|p| {
        p.scheme == scheme
            && p.port == port
            && match &p.host {
                HostPattern::Name(n) => n == host,
                HostPattern::Subdomains(s) => host
                    .strip_suffix(s.as_str())
                    .is_some_and(|r| r.ends_with('.') && r.len() > 1),
                HostPattern::Ip(ip) => host.parse::<IpAddr>().is_ok_and(|h| h == *ip),
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_are_next_to_the_pattern_and_never_granted() {
        let api = NetPattern::parse("https://api.example.com").unwrap();
        let urls = neighbours(&api);
        assert_eq!(
            urls,
            [
                "http://api.example.com:443/",
                "https://api.example.com:442/",
                "https://api.example.com:444/",
                "https://probe.api.example.com:443/",
                "https://probeapi.example.com:443/",
            ]
        );
        assert!(urls.iter().all(|u| !names(std::slice::from_ref(&api), u)));
        assert!(names(&[api], "https://api.example.com/"));
        let local = NetPattern::parse("http://127.0.0.1:8080").unwrap();
        assert!(names(
            std::slice::from_ref(&local),
            "http://127.0.0.1:8080/"
        ));
        assert!(!names(std::slice::from_ref(&local), "http://[::1]:8080/"));
        let metadata = NetPattern::parse("http://169.254.169.254").unwrap();
        assert_eq!(
            link_local(&[local.clone(), metadata.clone()]),
            Some(&metadata)
        );
        assert!(link_local(&[NetPattern::parse("http://[fe80::1]:80").unwrap()]).is_some());
        assert_eq!(link_local(std::slice::from_ref(&local)), None);
        let any = NetPattern::parse("https://*.example.com").unwrap();
        assert_eq!(neighbours(&any).last().unwrap(), "https://example.com:443/");
    }
}
