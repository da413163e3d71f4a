//! A small HTTP/1.1 server that misbehaves on purpose, at the byte level:
//! each test hands it a function from the request to the raw response bytes,
//! so bodies, headers, framing and status codes are exactly what a faulty
//! server would send. Every request is captured for inspection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Which TCP connection carried it, numbered from 1 in accept order.
    pub connection: usize,
}

impl Captured {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(&Captured) -> Vec<u8> + Send + Sync;

pub struct Fake {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Captured>>>,
    stop: Arc<AtomicBool>,
}

impl Fake {
    pub fn start(handler: impl Fn(&Captured) -> Vec<u8> + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(vec![]));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let (requests, stop) = (requests.clone(), stop.clone());
            std::thread::spawn(move || {
                let accepted = AtomicUsize::new(0);
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (h, r) = (handler.clone(), requests.clone());
                    let id = accepted.fetch_add(1, Ordering::SeqCst) + 1;
                    std::thread::spawn(move || serve(conn, id, &*h, &r));
                }
            });
        }
        Fake {
            addr,
            requests,
            stop,
        }
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Captured POSTs (the completions requests).
    pub fn posts(&self) -> Vec<Captured> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == "POST")
            .cloned()
            .collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// In a response, splits it into two writes 30 ms apart, so that what
/// follows arrives in a later read than what precedes.
pub const PAUSE: &[u8] = b"\0PAUSE\0";

fn serve(conn: TcpStream, id: usize, handler: &Handler, requests: &Mutex<Vec<Captured>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    // Keep-alive: answer requests until the client closes or a response
    // closes the connection.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = vec![];
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let req = Captured {
            method,
            path,
            headers,
            body,
            connection: id,
        };
        let resp = handler(&req);
        requests.lock().unwrap().push(req);
        let close = String::from_utf8_lossy(&resp[..resp.len().min(512)])
            .to_ascii_lowercase()
            .contains("connection: close");
        let written = match resp.windows(PAUSE.len()).position(|w| w == PAUSE) {
            Some(i) => conn.write_all(&resp[..i]).and_then(|_| {
                std::thread::sleep(Duration::from_millis(30));
                conn.write_all(&resp[i + PAUSE.len()..])
            }),
            None => conn.write_all(&resp),
        };
        if written.is_err() || close {
            let _ = conn.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

/// A complete response with a body and its length (keep-alive).
pub fn response(status: u16, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `response` with `application/json`.
pub fn json(status: u16, body: &str) -> Vec<u8> {
    response(status, "application/json", body)
}

/// An SSE stream of `data:` events, ended by closing the connection.
pub fn sse(events: &[&str]) -> Vec<u8> {
    let mut s = String::from(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
    );
    for e in events {
        s.push_str(&format!("data: {e}\n\n"));
    }
    s.into_bytes()
}

/// A well-formed non-streamed chat completion with `n` words.
pub fn chat_ok(n: usize) -> String {
    let text = vec!["word"; n].join(" ");
    format!(
        r#"{{"object":"chat.completion","choices":[{{"index":0,"message":{{"role":"assistant","content":"{text}"}},"finish_reason":"length"}}],"usage":{{"prompt_tokens":8,"completion_tokens":{n}}}}}"#
    )
}

/// A well-formed streamed chat completion with `n` words.
pub fn chat_stream_ok(n: usize) -> Vec<u8> {
    let mut ev: Vec<String> =
        vec![r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#.into()];
    for _ in 0..n {
        ev.push(r#"{"choices":[{"delta":{"content":"word "}}]}"#.into());
    }
    ev.push(r#"{"choices":[{"delta":{},"finish_reason":"length"}]}"#.into());
    ev.push("[DONE]".into());
    sse(&ev.iter().map(|s| s.as_str()).collect::<Vec<_>>())
}

/// A streamed chat completion of `n` words in chunked transfer encoding,
/// keep-alive, whose last chunk (`[DONE]`) and the body's terminator are
/// written 30 ms apart, as an ASGI server does when the generator ends.
pub fn chat_stream_chunked_late_end(n: usize) -> Vec<u8> {
    let mut s = String::from(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
    );
    let mut ev: Vec<String> = (0..n)
        .map(|_| r#"{"choices":[{"delta":{"content":"word "}}]}"#.to_string())
        .collect();
    ev.push(r#"{"choices":[{"delta":{},"finish_reason":"length"}]}"#.into());
    ev.push("[DONE]".into());
    for e in ev {
        let data = format!("data: {e}\n\n");
        s.push_str(&format!("{:x}\r\n{data}\r\n", data.len()));
    }
    let mut b = s.into_bytes();
    b.extend_from_slice(PAUSE);
    b.extend_from_slice(b"0\r\n\r\n");
    b
}
