//! A TCP proxy on 127.0.0.1 that forwards to a real server but cuts every connection once the
//! client has sent more than a set number of bytes on it: a network fault (an upload dropped
//! mid-body) injected into real traffic. Small requests pass untouched.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The proxy; it stops when dropped.
pub struct CuttingProxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    task: JoinHandle<()>,
}

impl CuttingProxy {
    /// Proxies to `upstream` (`host:port`), cutting connections after `limit` client bytes.
    pub async fn start(upstream: &str, limit: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.to_string();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        relay(client, server, limit).await;
                    }
                });
            }
        });
        Self { endpoint, task }
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Relays both ways until either side closes or the client has sent more than `limit` bytes;
/// then both sockets are dropped.
async fn relay(client: TcpStream, server: TcpStream, limit: usize) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let up = async {
        let mut buf = vec![0; 64 * 1024];
        let mut sent = 0;
        loop {
            let n = match client_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            sent += n;
            if sent > limit || server_tx.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = tokio::io::copy(&mut server_rx, &mut client_tx);
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}
