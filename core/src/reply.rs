//! A Valkey reply as core sees it: the shell converts its driver's value into
//! this, and the contract decoders turn it into typed results.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Nil,
    Int(i64),
    Bulk(Vec<u8>),
    Status(String),
    Error(String),
    Array(Vec<Reply>),
}

/// A reply whose shape is not what the contract declares.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unexpected reply from {function}: {reason}")]
pub struct DecodeError {
    pub function: &'static str,
    pub reason: String,
}

impl Reply {
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
    pub fn new(function: &'static str, items: &'a [Reply]) -> Self {
        Self {
            function,
            items: items.iter(),
        }
    }

    pub fn error(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            function: self.function,
            reason: reason.into(),
        }
    }

    pub fn next_reply(&mut self, what: &str) -> Result<&'a Reply, DecodeError> {
        self.items
            .next()
            .ok_or_else(|| self.error(format!("missing {what}")))
    }

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

    pub fn bytes(&mut self, what: &str) -> Result<Vec<u8>, DecodeError> {
        match self.next_reply(what)? {
            Reply::Bulk(b) => Ok(b.clone()),
            Reply::Status(s) => Ok(s.clone().into_bytes()),
            Reply::Nil => Ok(Vec::new()),
            r => Err(self.error(format!("{what} is not a string: {r:?}"))),
        }
    }

    pub fn int(&mut self, what: &str) -> Result<i64, DecodeError> {
        let r = self.next_reply(what)?;
        r.int()
            .ok_or_else(|| self.error(format!("{what} is not an integer: {r:?}")))
    }

    pub fn remaining(&self) -> usize {
        self.items.len()
    }
}
