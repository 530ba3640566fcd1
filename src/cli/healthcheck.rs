//! `mvgen healthcheck`: asks a running server for `GET /health` and exits 0 on a 200.
//!
//! It exists for container HEALTHCHECKs: a `scratch` image has no shell and no curl, so the binary
//! checks itself. Plain std networking keeps it independent of the async runtime.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::{NegativeAnswer, Outcome};
use crate::server::Settings;

/// A server that does not answer 200 is a negative answer (exit 1); unusable settings exit 2.
pub fn healthcheck(addr: Option<SocketAddr>) -> anyhow::Result<Outcome> {
    let addr = reachable(Settings::from_env(addr).context("invalid settings")?.addr);
    probe(addr).map_err(|e| NegativeAnswer(format!("health check of {addr} failed: {e:#}")))?;
    Ok(Outcome::Success)
}

/// A server bound to every interface is checked over loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => SocketAddr::from((Ipv4Addr::LOCALHOST, a.port())),
        SocketAddr::V6(a) if a.ip().is_unspecified() => SocketAddr::from((Ipv6Addr::LOCALHOST, a.port())),
        other => other,
    }
}

fn probe(addr: SocketAddr) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let status_line = String::from_utf8_lossy(&head[..n]);
    let status = status_line.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        bail!("answered {:?}", status_line.lines().next().unwrap_or(""));
    }
    Ok(())
}
