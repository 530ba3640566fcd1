//! `mvgen healthcheck`: asks a running server for `GET /health` and exits 0 on a 200.
//!
//! It exists for container HEALTHCHECKs: a `scratch` image has no shell and no curl, so the binary
//! checks itself. Plain std networking keeps it independent of the async runtime.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use crate::server::Settings;

pub fn healthcheck(addr: Option<SocketAddr>) -> ExitCode {
    let addr = match Settings::from_env(addr) {
        Ok(s) => reachable(s.addr),
        Err(e) => {
            eprintln!("mvgen: invalid settings: {e}");
            return ExitCode::from(2);
        }
    };
    match probe(addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mvgen: health check of {addr} failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// A server bound to every interface is checked over loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => SocketAddr::from((Ipv4Addr::LOCALHOST, a.port())),
        SocketAddr::V6(a) if a.ip().is_unspecified() => SocketAddr::from((Ipv6Addr::LOCALHOST, a.port())),
        other => other,
    }
}

fn probe(addr: SocketAddr) -> Result<(), String> {
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    write!(stream, "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).map_err(|e| e.to_string())?;
    let status_line = String::from_utf8_lossy(&head[..n]);
    let status = status_line.split_whitespace().nth(1).unwrap_or("");
    if status == "200" { Ok(()) } else { Err(format!("answered {:?}", status_line.lines().next().unwrap_or(""))) }
}
