//! The network grant: allowed destinations work, everything else is refused
//! with a typed error before a connection is made.

use serde_json::json;

use crate::common::*;
use crate::server::Server;

fn http_policy(net: &str, extra: &str) -> String {
    policy(&format!(
        "[capabilities.http]\ncomponent = \"builtin:http\"\ntools = [\"get\"]\nnet = [{net}]\n{extra}"
    ))
}

fn get(url: String) -> (&'static str, serde_json::Value) {
    ("http.get", json!({ "url": url }))
}

#[test]
fn only_the_allowlist_is_reachable() {
    let other = Server::start(0);
    let server = Server::start(other.port);
    let p = server.port;
    let s = Scratch::new();
    s.setup(
        &http_policy(&format!("\"http://127.0.0.1:{p}\""), ""),
        calls(&[
            get(format!("http://127.0.0.1:{p}/")),
            get(format!("http://127.0.0.1:{}/", other.port)),
            get(format!("http://localhost:{p}/")),
            get(format!("http://example.com:{p}/")),
            get("http://169.254.169.254/latest/meta-data/".into()),
            get(format!("https://127.0.0.1:{p}/")),
            get(format!("http://127.0.0.1:{p}/redirect-away")),
            get(format!("http://127.0.0.1:{p}/redirect-home")),
        ]),
    );
    let out = s.run_echo();
    let t = out.transcript();
    let kinds = kinds(&t);
    assert_eq!(
        kinds,
        [
            "ok", "denied", "denied", "denied", "denied", "denied", "denied", "ok"
        ],
        "{t:#?}"
    );
    let first: serde_json::Value = serde_json::from_str(t[0]["ok"].as_str().unwrap()).unwrap();
    assert_eq!(
        (first["status"].as_u64(), first["body"].as_str()),
        (Some(200), Some("hello from loopback"))
    );
    let last: serde_json::Value = serde_json::from_str(t[7]["ok"].as_str().unwrap()).unwrap();
    assert_eq!(
        last["body"], "arrived",
        "a redirect to an allowed place is followed"
    );
    assert!(
        t[6]["message"]
            .as_str()
            .unwrap()
            .contains(&other.port.to_string()),
        "{t:#?}"
    );

    // Refused requests never connected: the other port saw nothing, and the
    // server saw the first request, both redirect hops it served, and the
    // final hop of the allowed redirect.
    assert_eq!(other.connections(), 0);
    assert_eq!(server.connections(), 4);
    let first = server.requests.lock().unwrap()[0].to_ascii_lowercase();
    assert!(
        first.starts_with("get / http/1.1"),
        "origin-form request line: {first}"
    );
    assert!(first.contains(&format!("host: 127.0.0.1:{p}")), "{first}");
    let denials = out
        .events()
        .into_iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("outgoing request refused"))
        })
        .count();
    assert_eq!(
        denials, 6,
        "one decision event per refused request: {}",
        out.stderr
    );
}

#[test]
fn an_ip_literal_does_not_match_a_named_host() {
    let server = Server::start(0);
    let p = server.port;
    let s = Scratch::new();
    s.setup(
        &http_policy(&format!("\"http://localhost:{p}\""), ""),
        calls(&[get(format!("http://127.0.0.1:{p}/"))]),
    );
    let t = s.run_echo().transcript();
    assert_eq!(t[0]["error"], "denied", "{t:#?}");
    assert_eq!(server.connections(), 0);
}

#[test]
fn responses_are_capped() {
    let server = Server::start(0);
    let p = server.port;
    let s = Scratch::new();
    s.setup(
        &format!(
            "{}\n",
            http_policy(&format!("\"http://127.0.0.1:{p}\""), "").replace(
                "version = 1\n",
                "version = 1\n[limits]\nmax-tool-output = \"64KiB\"\n"
            )
        ),
        calls(&[
            get(format!("http://127.0.0.1:{p}/big")),
            get(format!("http://127.0.0.1:{p}/headers")),
            get(format!("http://127.0.0.1:{p}/")),
        ]),
    );
    let t = s.run_echo().transcript();
    let kinds = kinds(&t);
    assert_eq!(kinds, ["limit_exceeded", "limit_exceeded", "ok"], "{t:#?}");
}

#[test]
fn raw_sockets_and_name_lookups_are_refused() {
    let server = Server::start(0);
    let s = Scratch::new();
    s.setup(
        &policy(&format!(
            "[capabilities.h]\ncomponent = {:?}\ntools = [\"connect\", \"lookup\"]\nnet = [\"http://127.0.0.1:{}\"]\n",
            artifacts::CAP_HOSTILE,
            server.port
        )),
        calls(&[
            ("h.connect", json!({ "addr": format!("127.0.0.1:{}", server.port) })),
            ("h.lookup", json!({ "host": "localhost" })),
        ]),
    );
    let t = s.run_echo().transcript();
    assert_eq!(t[0]["error"], "failed", "{t:#?}");
    assert!(
        t[0]["message"].as_str().unwrap().starts_with("connect:"),
        "{t:#?}"
    );
    assert_eq!(t[1]["error"], "failed", "{t:#?}");
    assert_eq!(
        server.connections(),
        0,
        "a net grant is for HTTP, never a raw socket"
    );
}

#[test]
fn redirects_resolve_by_the_url_standard() {
    let server = Server::start(0);
    let p = server.port;
    let s = Scratch::new();
    s.setup(
        &http_policy(&format!("\"http://127.0.0.1:{p}\""), ""),
        calls(&[
            get(format!("http://127.0.0.1:{p}/a/b")),
            get(format!("http://127.0.0.1:{p}/scheme-relative")),
        ]),
    );
    let t = s.run_echo().transcript();
    assert_eq!(kinds(&t), ["ok", "ok"], "{t:#?}");
    let relative: serde_json::Value = serde_json::from_str(t[0]["ok"].as_str().unwrap()).unwrap();
    assert_eq!(
        (relative["url"].as_str(), relative["body"].as_str()),
        (
            Some(format!("http://127.0.0.1:{p}/a/c").as_str()),
            Some("relative arrived")
        ),
        "`Location: c` from /a/b is /a/c"
    );
    let scheme_relative: serde_json::Value =
        serde_json::from_str(t[1]["ok"].as_str().unwrap()).unwrap();
    assert_eq!(
        scheme_relative["url"],
        format!("http://127.0.0.1:{p}/a/c?from=scheme-relative"),
        "`//host/path` keeps the scheme"
    );
    let paths: Vec<String> = server
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.split_whitespace().nth(1).unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        paths,
        [
            "/a/b",
            "/a/c",
            "/scheme-relative",
            "/a/c?from=scheme-relative"
        ]
    );
}
