//! Sending one-time codes by SMS: a gateway trait, the development outbox that writes each
//! message as a JSON line to a file (tests and demos read the codes there), and a plain-HTTP
//! gateway for a production SMS relay inside the operator's network.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Mutex;

/// Sends a text message to a Vietnamese mobile number (`+84…`). Blocking.
pub trait SmsGateway: Send + Sync + std::fmt::Debug {
    /// Sends `text` to `phone`; an error text for the log when it could not.
    fn send(&self, phone: &str, text: &str) -> Result<(), String>;
}

/// **Development only.** Appends `{"to": …, "text": …}` lines to a file instead of sending.
#[derive(Debug)]
pub struct OutboxGateway {
    path: PathBuf,
    lock: Mutex<()>,
}

impl OutboxGateway {
    /// An outbox writing to `path` (created on first message).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            lock: Mutex::new(()),
        }
    }

    /// The file it writes to.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl SmsGateway for OutboxGateway {
    fn send(&self, phone: &str, text: &str) -> Result<(), String> {
        let _guard = self.lock.lock().map_err(|_| "outbox lock poisoned")?;
        let line = serde_json::json!({"to": phone, "text": text}).to_string();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| format!("outbox {}: {e}", self.path.display()))?;
        writeln!(f, "{line}").map_err(|e| e.to_string())
    }
}

/// POSTs `{"to": …, "text": …}` as JSON to an `http://host:port/path` SMS relay (HTTP/1.1, no
/// TLS: the relay runs beside the server) and expects a 2xx answer.
#[derive(Debug, Clone)]
pub struct HttpGateway {
    host_port: String,
    path: String,
    timeout: std::time::Duration,
}

impl HttpGateway {
    /// A gateway for an `http://` URL.
    pub fn new(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or("the SMS relay URL must start with http://")?;
        let (host_port, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host_port.is_empty() {
            return Err("the SMS relay URL has no host".into());
        }
        let host_port = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:80")
        };
        Ok(Self {
            host_port,
            path: path.to_owned(),
            timeout: std::time::Duration::from_secs(5),
        })
    }
}

impl SmsGateway for HttpGateway {
    fn send(&self, phone: &str, text: &str) -> Result<(), String> {
        use std::net::ToSocketAddrs;
        let body = serde_json::json!({"to": phone, "text": text}).to_string();
        let addr = self
            .host_port
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("SMS relay host did not resolve")?;
        let mut s = std::net::TcpStream::connect_timeout(&addr, self.timeout)
            .map_err(|e| format!("SMS relay: {e}"))?;
        s.set_read_timeout(Some(self.timeout))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(self.timeout))
            .map_err(|e| e.to_string())?;
        let req = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.path,
            self.host_port,
            body.len()
        );
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).map_err(|e| e.to_string())?;
        match &head[..] {
            [b'H', b'T', b'T', b'P', b'/', _, _, _, b' ', b'2', _, _] => Ok(()),
            _ => Err(format!(
                "SMS relay answered {:?}",
                String::from_utf8_lossy(&head)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn outbox_appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let g = OutboxGateway::new(dir.path().join("sms.ndjson"));
        g.send("+84912345678", "code 123456").unwrap();
        g.send("+84912345679", "code 654321").unwrap();
        let text = std::fs::read_to_string(g.path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["to"], "+84912345679");
        assert_eq!(lines[1]["text"], "code 654321");
    }

    #[test]
    fn http_gateway_posts_and_checks_status() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/send", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 4096];
            let n = c.read(&mut buf).unwrap();
            c.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        HttpGateway::new(&url)
            .unwrap()
            .send("+84912345678", "xin chao")
            .unwrap();
        let req = server.join().unwrap();
        assert!(req.starts_with("POST /send HTTP/1.1"), "{req}");
        assert!(req.contains("\"to\":\"+84912345678\""), "{req}");
        assert!(HttpGateway::new("https://x").is_err());
    }
}
