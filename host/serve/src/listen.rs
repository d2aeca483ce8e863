//! Connections: accepted up to `limits.connections` (more are closed at
//! once), TLS (rustls, ALPN `h2` and `http/1.1`) or plain HTTP on loopback,
//! HTTP/1.1 and HTTP/2 (hyper), a header timeout that also closes idle
//! keep-alive connections, and a graceful end on shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::Server;
use crate::config::Transport;

/// Bytes of request headers one request may send (HTTP/1 read buffer, and
/// HTTP/2's header list).
const MAX_HEADERS: usize = 64 << 10;
/// Streams one HTTP/2 connection may have open.
const MAX_STREAMS: u32 = 64;

/// The TLS acceptor of the configured certificate, or `None` for plain HTTP.
pub fn tls_acceptor(transport: &Transport) -> Result<Option<TlsAcceptor>, String> {
    let Transport::Tls { cert, key } = transport else {
        return Ok(None);
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| {
            format!(
                "`tls.cert`: cannot read certificates from `{}`: {e}",
                cert.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "`tls.cert`: `{}` holds no PEM certificate",
            cert.display()
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "`tls.key`: cannot read a private key from `{}`: {e}",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| format!("`tls`: the certificate and key do not make a TLS identity: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// Accepts connections until `shutdown`, then stops listening and lets the
/// open connections finish their requests (within `limits.drain`).
pub async fn accept_loop(
    server: Arc<Server>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) {
    let limits = server.config.limits;
    let slots = Arc::new(Semaphore::new(limits.connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: wait instead of spinning.
                tracing::warn!(target: "femtoclaw::serve", error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            server
                .counters
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (server, router, tls) = (server.clone(), router.clone(), tls.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            server
                .counters
                .open_connections
                .fetch_add(1, Ordering::Relaxed);
            let service = TowerToHyperService::new(router);
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(MAX_HEADERS);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(limits.idle_timeout)
                .keep_alive_timeout(limits.header_timeout)
                .max_concurrent_streams(MAX_STREAMS)
                .max_header_list_size(MAX_HEADERS as u32);
            let served = match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn).await
                }
                Some(tls) => {
                    match tokio::time::timeout(limits.header_timeout, tls.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            watcher.watch(conn).await
                        }
                        Ok(Err(e)) => Err(e.into()),
                        Err(_) => Err("TLS handshake timed out".into()),
                    }
                }
            };
            if let Err(e) = served {
                tracing::debug!(target: "femtoclaw::serve", error = %e, "connection ended with an error");
            }
            server
                .counters
                .open_connections
                .fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(listener);
    server.draining.store(true, Ordering::SeqCst);
    let drain = limits.drain;
    tokio::spawn(async move {
        let _ = tokio::time::timeout(drain, graceful.shutdown()).await;
    });
}
