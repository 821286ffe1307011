//! A tiny HTTP server that plays a registry which lies: fixed bodies by path, optionally dripped,
//! cut, range-served or sent without a length. A real registry will not serve wrong content, so
//! tests of skiff's checks on what it downloads use this.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// Serves fixed responses by path on 127.0.0.1 (loopback, so skiff speaks plain HTTP to it).
pub fn serve(routes: HashMap<String, (String, Vec<u8>)>) -> String {
    serve_throttled(routes, None)
}

/// Like [`serve`]; bodies larger than 1 KiB trickle out 256 bytes every `drip` when set.
pub fn serve_throttled(
    routes: HashMap<String, (String, Vec<u8>)>,
    drip: Option<Duration>,
) -> String {
    serve_with(
        routes,
        Faults {
            drip,
            ..Faults::default()
        },
    )
}

/// How the fault server misbehaves.
#[derive(Default, Clone)]
pub struct Faults {
    /// Bodies larger than 1 KiB trickle out 256 bytes at a time, this far apart.
    pub drip: Option<Duration>,
    /// The first GET of a body larger than 1 KiB announces its full length, sends half, and
    /// hangs up: a connection dropped mid-download.
    pub cut_first: bool,
    /// Answer `Range: bytes=N-` with 206 and the rest (otherwise the range is ignored: 200).
    pub ranges: bool,
    /// Every Range header received, in order.
    pub seen_ranges: Arc<std::sync::Mutex<Vec<String>>>,
    /// Send bodies without Content-Length (ended by closing the connection), so only the
    /// bytes themselves say how long a body is.
    pub no_length: bool,
    /// Body bytes written to clients so far (all paths).
    pub sent: Arc<std::sync::atomic::AtomicU64>,
}

/// Like [`serve`], with the given faults.
pub fn serve_with(routes: HashMap<String, (String, Vec<u8>)>, faults: Faults) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let routes = Arc::new(routes);
    let cut_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::spawn(move || {
        for stream in listener.incoming().take(200) {
            let Ok(mut s) = stream else { continue };
            let routes = routes.clone();
            let faults = faults.clone();
            let cut_done = cut_done.clone();
            let drip = faults.drip;
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let req = String::from_utf8_lossy(&buf).into_owned();
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                let head = req.starts_with("HEAD");
                let range = req.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("range")
                        .then(|| v.trim().to_string())
                });
                if let Some(r) = &range {
                    faults.seen_ranges.lock().unwrap().push(r.clone());
                }
                let resp = match routes.get(&path) {
                    Some((_, body))
                        if !head
                            && body.len() > 1024
                            && faults.cut_first
                            && !cut_done.swap(true, std::sync::atomic::Ordering::SeqCst) =>
                    {
                        let mut r = format!("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
                        r.extend_from_slice(&body[..body.len() / 2]);
                        let _ = s.write_all(&r);
                        let _ = s.flush();
                        // Let the client read the half before the connection drops.
                        std::thread::sleep(Duration::from_millis(200));
                        return;
                    }
                    Some((ctype, body)) if faults.ranges && !head && range.is_some() => {
                        let from: usize = range
                            .as_deref()
                            .and_then(|r| r.strip_prefix("bytes="))
                            .and_then(|r| r.trim_end_matches('-').parse().ok())
                            .unwrap_or(0)
                            .min(body.len());
                        let mut r = format!("HTTP/1.1 206 Partial Content\r\nContent-Type: {ctype}\r\nContent-Range: bytes {from}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len() - 1, body.len(), body.len() - from).into_bytes();
                        r.extend_from_slice(&body[from..]);
                        r
                    }
                    Some((ctype, body)) => {
                        let length = if faults.no_length {
                            String::new()
                        } else {
                            format!("Content-Length: {}\r\n", body.len())
                        };
                        let r = format!("HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\n{length}Connection: close\r\n\r\n").into_bytes();
                        if head {
                            r
                        } else if let (Some(d), true) = (drip, body.len() > 1024) {
                            let _ = s.write_all(&r);
                            for c in body.chunks(256) {
                                if s.write_all(c).is_err() {
                                    return;
                                }
                                faults
                                    .sent
                                    .fetch_add(c.len() as u64, std::sync::atomic::Ordering::SeqCst);
                                std::thread::sleep(d);
                            }
                            return;
                        } else {
                            let mut r = r;
                            r.extend_from_slice(body);
                            r
                        }
                    }
                    None => b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec(),
                };
                let _ = s.write_all(&resp);
            });
        }
    });
    addr
}
