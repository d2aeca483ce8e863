//! The network gate: every outgoing HTTP(S) request of a guest goes through
//! [`NetGate::send_request`], which
//! 1. refuses any destination that no `net` pattern of the grant names
//!    (scheme, host and port must match; an IP literal is not its name);
//! 2. resolves the name once, refuses private, loopback, link-local and
//!    metadata addresses unless the pattern names them, and connects to the
//!    checked address itself (no second lookup, so no DNS rebinding);
//! 3. caps response headers and body.
//!
//! Redirects are not followed here: a guest that follows one sends a new
//! request, which is checked again.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use femtoclaw_policy::{HostPattern, NetPattern};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Response headers accepted per response.
const MAX_RESPONSE_HEADERS: usize = 100;
/// Headers hyper parses before giving up with a protocol error.
const HYPER_MAX_HEADERS: usize = 1024;
/// Connect and first-byte timeout when the guest sets none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send>;

/// One component's network grant.
#[derive(Clone)]
pub(crate) struct NetGate {
    /// Who asks, for the audit trail.
    pub component: String,
    /// The `net` patterns of its grant (empty: no network at all).
    pub patterns: Arc<Vec<NetPattern>>,
    /// Response body cap, bytes.
    pub max_body: u64,
    /// A header the host adds to requests for one origin (a brain's API
    /// key, which the brain itself never sees).
    pub inject: Option<Arc<Injected>>,
    /// Judge requests but never connect: an allowed one fails with
    /// [`DECIDED_ONLY`] instead.
    pub decide_only: bool,
}

/// The error of a request the gate allowed under `decide_only`.
pub(crate) const DECIDED_ONLY: &str = "allowed by the gate, not sent (decide-only)";

/// A header added by the host to requests that match `origin`.
pub(crate) struct Injected {
    pub origin: NetPattern,
    pub name: http::HeaderName,
    pub value: http::HeaderValue,
}

impl WasiHttpHooks for NetGate {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        let gate = self.clone();
        Box::new(async move { gate.send(request, options).await })
    }
}

impl NetGate {
    /// No network at all.
    pub(crate) fn none(component: &str) -> NetGate {
        NetGate {
            component: component.to_owned(),
            patterns: Default::default(),
            max_body: 0,
            inject: None,
            decide_only: false,
        }
    }

    async fn send(
        &self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
        let uri = request.uri().clone();
        let target = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("?"),
            uri.authority().map_or("?", |a| a.as_str())
        );
        let Some((pattern, host, port, tls)) = self.matching(&uri) else {
            tracing::info!(target: "femtoclaw::decision", component = %self.component, destination = %target, decision = "deny", rule = "net", "outgoing request refused: no `net` pattern names it");
            return Err(Error::HttpRequestDenied);
        };
        let addr = resolve_checked(&host, port, pattern).await.inspect_err(|e| {
            tracing::info!(target: "femtoclaw::decision", component = %self.component, destination = %target, decision = "deny", rule = "net.address", error = ?e, "outgoing request refused: address not allowed");
        })?;
        tracing::info!(target: "femtoclaw::decision", component = %self.component, destination = %target, address = %addr, decision = "allow", rule = %format!("net: {pattern}"), "outgoing request allowed");
        if self.decide_only {
            return Err(Error::InternalError(Some(DECIDED_ONLY.into())));
        }
        if let Some(inject) = self.inject.as_ref().filter(|i| i.origin == *pattern) {
            request
                .headers_mut()
                .insert(inject.name.clone(), inject.value.clone());
        }

        let connect_timeout = options
            .and_then(|o| o.connect_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let first_byte_timeout = options
            .and_then(|o| o.first_byte_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let stream = tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(Error::Connect)?;
        // The request line carries only the path; Host stays the name.
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        *request.uri_mut() = http::Uri::builder()
            .path_and_query(path)
            .build()
            .map_err(|_| Error::HttpRequestUriInvalid)?;

        let (mut sender, conn) = if tls {
            let stream = tls_connect(&host, stream).await?;
            handshake(stream, connect_timeout).await?
        } else {
            handshake(stream, connect_timeout).await?
        };
        let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(Error::from)?;
        if response.headers().len() > MAX_RESPONSE_HEADERS {
            return Err(Error::HttpResponseHeaderSectionSize(Some(
                response.headers().len() as u32,
            )));
        }
        let max_body = self.max_body;
        let response = response.map(|body| {
            Capped {
                inner: body,
                left: max_body,
                max: max_body,
            }
            .boxed_unsync()
        });
        Ok((response, conn))
    }

    /// The first pattern naming the request's scheme, host and port.
    fn matching(&self, uri: &http::Uri) -> Option<(&NetPattern, String, u16, bool)> {
        let scheme = uri.scheme_str()?;
        let tls = match scheme {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let host = uri
            .host()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let pattern = self
            .patterns
            .iter()
            .find(|p| p.scheme == scheme && p.port == port && host_matches(&p.host, &host))?;
        Some((pattern, host, port, tls))
    }
}

fn host_matches(pattern: &HostPattern, host: &str) -> bool {
    match pattern {
        HostPattern::Name(n) => n == host,
        HostPattern::Subdomains(suffix) => host
            .strip_suffix(suffix.as_str())
            .is_some_and(|p| p.ends_with('.') && p.len() > 1),
        HostPattern::Ip(ip) => host.parse::<IpAddr>().is_ok_and(|h| h == *ip),
    }
}

/// Resolves `host` once and returns the first address the pattern allows.
async fn resolve_checked(host: &str, port: u16, pattern: &NetPattern) -> Result<SocketAddr, Error> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(DEFAULT_TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| Error::DnsTimeout)?
            .map_err(|e| Error::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(Error::DestinationNotFound);
    }
    addrs
        .into_iter()
        .find(|a| address_allowed(a.ip(), &pattern.host))
        .ok_or(Error::DestinationIpProhibited)
}

/// Public addresses are allowed; special ones only when the pattern names
/// them: the IP literal itself, or `localhost` for loopback.
pub(crate) fn address_allowed(ip: IpAddr, pattern: &HostPattern) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if !is_special(ip) {
        return true;
    }
    match pattern {
        HostPattern::Ip(named) => *named == ip,
        HostPattern::Name(n) => n == "localhost" && ip.is_loopback(),
        HostPattern::Subdomains(_) => false,
    }
}

/// Loopback, private, link-local (which holds cloud metadata at
/// 169.254.169.254), shared, unspecified, broadcast, multicast and the like.
fn is_special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || a >= 240
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x64 && v6.segments()[1] == 0xff9b
        }
    }
}

/// The TLS client configuration of every outgoing connection: ring, the
/// safe protocol versions, the webpki roots, no client certificate.
pub fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// [`resolve_checked`] for clients outside the gate's own (an MCP
/// server's): the one address to connect to, or why there is none.
pub async fn resolve_allowed(
    host: &str,
    port: u16,
    pattern: &NetPattern,
) -> Result<SocketAddr, std::io::Error> {
    resolve_checked(host, port, pattern).await.map_err(|e| {
        tracing::info!(target: "femtoclaw::decision", destination = %format!("{host}:{port}"), decision = "deny", rule = "net.address", error = ?e, "outgoing connection refused: address not allowed");
        std::io::Error::new(std::io::ErrorKind::PermissionDenied, format!("`{host}` resolves to no address that `{pattern}` allows ({e:?})"))
    })
}

async fn tls_connect(
    host: &str,
    stream: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Error> {
    let config = tls_config().map_err(|_| Error::TlsProtocolError)?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(Error::InvalidDnsNameError)?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .map_err(Error::Tls)
}

type Sender = hyper::client::conn::http1::SendRequest<WasiBody>;

async fn handshake<S>(stream: S, timeout: Duration) -> Result<(Sender, IoFuture), Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = tokio::time::timeout(
        timeout,
        hyper::client::conn::http1::Builder::new()
            // Parse generously so that our own cap, below, decides and says so.
            .max_headers(HYPER_MAX_HEADERS)
            .handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    // The connection must be driven while the request is in flight.
    let driver = tokio::spawn(conn);
    let io = async move {
        match driver.await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::ConnectionTerminated),
        }
    };
    Ok((sender, Box::new(io)))
}

/// A response body that fails once it exceeds its cap.
struct Capped {
    inner: hyper::body::Incoming,
    left: u64,
    max: u64,
}

impl Body for Capped {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                if len > self.left {
                    return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(self.max)))));
                }
                self.left -= len;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn special_addresses_need_a_pattern_that_names_them() {
        let name = HostPattern::Name("api.example.com".into());
        for special in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!address_allowed(ip(special), &name), "{special}");
        }
        assert!(address_allowed(ip("93.184.216.34"), &name));
        assert!(address_allowed(ip("2606:4700::1111"), &name));
        assert!(address_allowed(
            ip("127.0.0.1"),
            &HostPattern::Ip(ip("127.0.0.1"))
        ));
        assert!(!address_allowed(
            ip("127.0.0.2"),
            &HostPattern::Ip(ip("127.0.0.1"))
        ));
        assert!(address_allowed(
            ip("127.0.0.1"),
            &HostPattern::Name("localhost".into())
        ));
        assert!(!address_allowed(
            ip("10.0.0.1"),
            &HostPattern::Name("localhost".into())
        ));
        assert!(!address_allowed(
            ip("169.254.169.254"),
            &HostPattern::Subdomains("example.com".into())
        ));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_gate_that_decides_only_never_connects() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}");
        let gate = NetGate {
            component: "probe".into(),
            patterns: Arc::new(vec![NetPattern::parse(&url).unwrap()]),
            max_body: 1024,
            inject: None,
            decide_only: true,
        };
        let body = http_body_util::Empty::<Bytes>::new()
            .map_err(|e| match e {})
            .boxed_unsync();
        let request = http::Request::get(format!("{url}/")).body(body).unwrap();
        let refused = gate.send(request, None).await.err();
        // Allowed by the pattern, and still not sent: nothing connected.
        assert!(
            matches!(&refused, Some(Error::InternalError(Some(m))) if m == DECIDED_ONLY),
            "{refused:?}"
        );
        let accepted = listener.accept().map(|_| ()).map_err(|e| e.kind());
        assert_eq!(accepted, Err(std::io::ErrorKind::WouldBlock));
    }

    #[test]
    fn hosts_match_exactly_or_as_subdomains() {
        assert!(host_matches(&HostPattern::Name("a.com".into()), "a.com"));
        assert!(!host_matches(&HostPattern::Name("a.com".into()), "b.a.com"));
        assert!(host_matches(
            &HostPattern::Subdomains("a.com".into()),
            "b.a.com"
        ));
        assert!(!host_matches(
            &HostPattern::Subdomains("a.com".into()),
            "a.com"
        ));
        assert!(!host_matches(
            &HostPattern::Subdomains("a.com".into()),
            "ba.com"
        ));
        assert!(!host_matches(
            &HostPattern::Ip(ip("127.0.0.1")),
            "localhost"
        ));
    }
}
