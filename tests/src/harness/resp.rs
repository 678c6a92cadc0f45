//! A minimal RESP2 client over a raw TCP connection, enough to probe servers
//! while they start (no dependency on the `redis` crate or on a runtime).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// A reply: simple string (`+`), error (`-`), integer (`:`) or bulk string
/// (`$`) as text; `None` for a nil bulk string. Arrays are not supported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Status(String),
    Error(String),
    Integer(i64),
    Bulk(Option<String>),
}

/// Sends one command to `127.0.0.1:port` on a fresh connection and reads the
/// reply.
pub(crate) fn command(port: u16, args: &[&str]) -> io::Result<Reply> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;

    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    (&stream).write_all(&request)?;

    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a reply",
        ));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {line:?}"));
    let (kind, rest) = line.split_at_checked(1).ok_or_else(|| bad("empty reply"))?;
    match kind {
        "+" => Ok(Reply::Status(rest.to_owned())),
        "-" => Ok(Reply::Error(rest.to_owned())),
        ":" => rest
            .parse()
            .map(Reply::Integer)
            .map_err(|_| bad("bad integer reply")),
        "$" => {
            let len: i64 = rest.parse().map_err(|_| bad("bad bulk length"))?;
            let Ok(len) = usize::try_from(len) else {
                return Ok(Reply::Bulk(None));
            };
            let mut body = vec![0; len + 2];
            reader.read_exact(&mut body)?;
            body.truncate(len);
            Ok(Reply::Bulk(Some(
                String::from_utf8_lossy(&body).into_owned(),
            )))
        }
        _ => Err(bad("unsupported reply type")),
    }
}

/// Text of a status or bulk reply, for `INFO`-like commands.
pub(crate) fn text(port: u16, args: &[&str]) -> io::Result<String> {
    match command(port, args)? {
        Reply::Status(s) | Reply::Bulk(Some(s)) => Ok(s),
        other => Err(io::Error::other(format!(
            "unexpected reply to {args:?}: {other:?}"
        ))),
    }
}

/// Value of `field` in an `INFO`-style `field:value` text.
pub(crate) fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|l| {
        l.strip_prefix(field)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}
