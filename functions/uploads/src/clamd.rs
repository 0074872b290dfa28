//! The scanner port on ClamAV's daemon, over TCP: `zINSTREAM`, the file in chunks (a
//! 4-byte big-endian length before each, a zero length at the end), and one reply line,
//! `stream: OK` or `stream: <signature> FOUND`.

use std::time::Duration;

use async_trait::async_trait;
use motcua_ports::uploads::{ScanError, Scanner, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes sent per chunk (clamd's `StreamMaxLength` bounds the total, not the chunk).
const CHUNK: usize = 64 * 1024;
/// The longest reply read: a signature name is short.
const MAX_REPLY: usize = 4096;

pub struct Clamd {
    addr: String,
    timeout: Duration,
}

impl Clamd {
    /// clamd at `addr` (`HOST:PORT`); each scan must finish within `timeout`.
    pub fn new(addr: impl Into<String>, timeout: Duration) -> Clamd {
        Clamd {
            addr: addr.into(),
            timeout,
        }
    }

    async fn exchange(&self, bytes: &[u8]) -> Result<String, ScanError> {
        let io = |what: &str, e: std::io::Error| ScanError(format!("clamd {what}: {e}"));
        let mut conn = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| io("connect", e))?;
        conn.write_all(b"zINSTREAM\0")
            .await
            .map_err(|e| io("write", e))?;
        for chunk in bytes.chunks(CHUNK) {
            let len = u32::try_from(chunk.len()).expect("a chunk fits in u32");
            conn.write_all(&len.to_be_bytes())
                .await
                .map_err(|e| io("write", e))?;
            conn.write_all(chunk).await.map_err(|e| io("write", e))?;
        }
        conn.write_all(&[0, 0, 0, 0])
            .await
            .map_err(|e| io("write", e))?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            let n = conn.read(&mut buf).await.map_err(|e| io("read", e))?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            if reply.contains(&0) || reply.len() > MAX_REPLY {
                break;
            }
        }
        let end = reply.iter().position(|&b| b == 0).unwrap_or(reply.len());
        Ok(String::from_utf8_lossy(&reply[..end]).trim().to_owned())
    }

    /// Whether clamd answers `PING` (for start-up checks and health).
    pub async fn ping(&self) -> bool {
        let run = async {
            let mut conn = TcpStream::connect(&self.addr).await.ok()?;
            conn.write_all(b"zPING\0").await.ok()?;
            let mut buf = [0u8; 16];
            let n = conn.read(&mut buf).await.ok()?;
            Some(buf[..n].starts_with(b"PONG"))
        };
        tokio::time::timeout(self.timeout, run)
            .await
            .ok()
            .flatten()
            .unwrap_or(false)
    }
}

/// Reads clamd's reply to a stream scan.
pub fn parse_reply(reply: &str) -> Result<Verdict, ScanError> {
    let body = reply.strip_prefix("stream:").map(str::trim);
    match body {
        Some("OK") => Ok(Verdict::Clean),
        Some(b) if b.ends_with(" FOUND") => Ok(Verdict::Infected(
            b.trim_end_matches(" FOUND").trim().to_owned(),
        )),
        // `INSTREAM size limit exceeded. ERROR`, `... ERROR`, anything else: no answer.
        _ => Err(ScanError(format!(
            "clamd answered {:?}",
            reply.chars().take(200).collect::<String>()
        ))),
    }
}

#[async_trait]
impl Scanner for Clamd {
    async fn scan(&self, bytes: &[u8]) -> Result<Verdict, ScanError> {
        let reply = tokio::time::timeout(self.timeout, self.exchange(bytes))
            .await
            .map_err(|_| ScanError(format!("clamd gave no answer within {:?}", self.timeout)))??;
        parse_reply(&reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_as_clamd_writes_them() {
        assert_eq!(parse_reply("stream: OK"), Ok(Verdict::Clean));
        assert_eq!(
            parse_reply("stream: Motcua.Test.EICAR.UNOFFICIAL FOUND"),
            Ok(Verdict::Infected("Motcua.Test.EICAR.UNOFFICIAL".into()))
        );
        assert!(parse_reply("INSTREAM size limit exceeded. ERROR").is_err());
        assert!(parse_reply("").is_err());
        assert!(parse_reply("stream: lstat() failed ERROR").is_err());
    }

    #[tokio::test]
    async fn a_scanner_that_is_not_there_is_an_error_not_a_verdict() {
        // Nothing listens on port 9 of loopback.
        let c = Clamd::new("127.0.0.1:9", Duration::from_secs(2));
        assert!(c.scan(b"x").await.is_err());
        assert!(!c.ping().await);
    }
}
