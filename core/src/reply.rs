//! A Valkey reply as core sees it: the shell converts its driver's value into
//! this, and the contract decoders turn it into typed results.

use thiserror::Error;

/// A RESP reply value.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Null.
    Nil,
    /// Integer.
    Int(i64),
    /// Bulk string.
    Bulk(Vec<u8>),
    /// Simple string.
    Status(String),
    /// Error (a raised error, not a `{0, code, detail}` value).
    Error(String),
    /// Array.
    Array(Vec<Reply>),
}

/// A reply whose shape is not what the contract declares.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unexpected reply from {function}: {reason}")]
pub struct DecodeError {
    /// The function whose reply it was.
    pub function: &'static str,
    /// What was wrong.
    pub reason: String,
}

impl Reply {
    /// A bulk string reply.
    pub fn bulk(s: impl Into<Vec<u8>>) -> Self {
        Reply::Bulk(s.into())
    }

    /// Text of a bulk or status reply, or the decimal text of an integer.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Bulk(b) => String::from_utf8(b.clone()).ok(),
            Reply::Status(s) => Some(s.clone()),
            Reply::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    /// An integer reply, or a bulk/status holding a decimal integer.
    pub fn int(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            Reply::Bulk(_) | Reply::Status(_) => self.text()?.parse().ok(),
            _ => None,
        }
    }
}

/// Reads the fields of an array reply in order, naming the function in errors.
pub struct Fields<'a> {
    function: &'static str,
    items: std::slice::Iter<'a, Reply>,
}

impl<'a> Fields<'a> {
    /// Read `items`, naming `function` in errors.
    pub fn new(function: &'static str, items: &'a [Reply]) -> Self {
        Self {
            function,
            items: items.iter(),
        }
    }

    /// A decode error naming the function.
    pub fn error(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            function: self.function,
            reason: reason.into(),
        }
    }

    /// The next reply, whatever its type.
    pub fn next_reply(&mut self, what: &str) -> Result<&'a Reply, DecodeError> {
        self.items
            .next()
            .ok_or_else(|| self.error(format!("missing {what}")))
    }

    /// The next field as text.
    pub fn text(&mut self, what: &str) -> Result<String, DecodeError> {
        let r = self.next_reply(what)?;
        r.text()
            .ok_or_else(|| self.error(format!("{what} is not text: {r:?}")))
    }

    /// Free text that may hold any bytes (an error detail echoing an
    /// argument): a bulk string is read as lossy UTF-8.
    pub fn lossy_text(&mut self, what: &str) -> Result<String, DecodeError> {
        match self.next_reply(what)? {
            Reply::Bulk(b) => Ok(String::from_utf8_lossy(b).into_owned()),
            r => r
                .text()
                .ok_or_else(|| self.error(format!("{what} is not text: {r:?}"))),
        }
    }

    /// The next field as bytes (nil reads as empty).
    pub fn bytes(&mut self, what: &str) -> Result<Vec<u8>, DecodeError> {
        match self.next_reply(what)? {
            Reply::Bulk(b) => Ok(b.clone()),
            Reply::Status(s) => Ok(s.clone().into_bytes()),
            Reply::Nil => Ok(Vec::new()),
            r => Err(self.error(format!("{what} is not a string: {r:?}"))),
        }
    }

    /// The next field as an integer.
    pub fn int(&mut self, what: &str) -> Result<i64, DecodeError> {
        let r = self.next_reply(what)?;
        r.int()
            .ok_or_else(|| self.error(format!("{what} is not an integer: {r:?}")))
    }

    /// Fields not read yet.
    pub fn remaining(&self) -> usize {
        self.items.len()
    }
}
