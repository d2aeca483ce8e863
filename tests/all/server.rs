//! A real HTTP/1.1 server on loopback for the network tests: it serves a few
//! fixed routes and counts the connections it accepted, so a test can prove
//! that a refused request never reached it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct Server {
    pub port: u16,
    connections: Arc<AtomicUsize>,
    /// Request lines and headers received, one entry per request.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Serves until the test process exits. `redirect_port` is where
    /// `/redirect-away` points.
    pub fn start(redirect_port: u16) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = (connections.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                r.lock().unwrap().push(head);
                let response = respond(&path, port, redirect_port);
                let _ = stream.write_all(&response);
            }
        });
        Server {
            port,
            connections,
            requests,
        }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn respond(path: &str, port: u16, redirect_port: u16) -> Vec<u8> {
    let ok = |body: &str, extra: &str| {
        format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}", body.len()).into_bytes()
    };
    let redirect = |to: String| {
        format!(
            "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        .into_bytes()
    };
    match path {
        "/redirect-away" => redirect(format!("http://127.0.0.1:{redirect_port}/")),
        "/redirect-home" => redirect(format!("http://127.0.0.1:{port}/final")),
        "/final" => ok("arrived", ""),
        // Relative and scheme-relative redirects, resolved by the URL
        // standard against the URL they came from.
        "/a/b" => redirect("c".into()),
        "/a/c" => ok("relative arrived", ""),
        "/scheme-relative" => redirect(format!("//127.0.0.1:{port}/a/c?from=scheme-relative")),
        "/store.json" => ok(
            r#"{"store":{"book":[{"title":"Dune","price":8},{"title":"Emma","price":12}],"bike":{"price":19}}}"#,
            "",
        ),
        "/big" => ok(&"b".repeat(512 << 10), ""),
        "/headers" => ok(
            "many",
            &(0..150)
                .map(|i| format!("x-h{i}: v\r\n"))
                .collect::<String>(),
        ),
        _ => ok("hello from loopback", ""),
    }
}
