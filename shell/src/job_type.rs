//! Typed jobs: a job type names its kind and its argument and result types
//! once; the client enqueues its arguments and awaits its output, the
//! worker's handler takes the arguments and returns the output, and the
//! bytes in between are the [`Codec`]'s business.
//!
//! ```
//! use ff_engine::JobType;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Email {
//!     to: String,
//! }
//!
//! struct SendEmail;
//! impl JobType for SendEmail {
//!     const KIND: &'static str = "email.send";
//!     type Args = Email;
//!     type Output = String; // the message id
//! }
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

/// A kind of job with typed arguments and output.
pub trait JobType: Send + Sync + 'static {
    /// The execution kind (a worker's handler is found by it).
    const KIND: &'static str;
    /// What the job is given.
    type Args: Serialize + DeserializeOwned + Send + 'static;
    /// What the job returns on success.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// How arguments and output travel as bytes.
    const CODEC: Codec = Codec::Json;
}

/// How typed values become payload and result bytes. Both ends of a job
/// type must use the same one; a payload that does not decode fails its
/// execution for good ([`CodecError`] names the kind and the reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    /// JSON (serde_json): readable in `ff get`, any language can produce it.
    #[default]
    Json,
    /// MessagePack (rmp-serde, fields by name): smaller and faster, still
    /// readable from other languages.
    MessagePack,
}

/// A value that did not encode or decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind}: cannot {op} with {codec:?}: {reason}")]
pub struct CodecError {
    /// The job kind.
    pub kind: String,
    /// `encode` or `decode`.
    pub op: &'static str,
    /// The codec used.
    pub codec: Codec,
    /// What the codec said.
    pub reason: String,
}

impl Codec {
    /// `value` as bytes.
    pub fn encode<T: Serialize>(self, kind: &str, value: &T) -> Result<Vec<u8>, CodecError> {
        let r = match self {
            Codec::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
            Codec::MessagePack => rmp_serde::to_vec_named(value).map_err(|e| e.to_string()),
        };
        r.map_err(|reason| self.error(kind, "encode", reason))
    }

    /// The value `bytes` hold.
    pub fn decode<T: DeserializeOwned>(self, kind: &str, bytes: &[u8]) -> Result<T, CodecError> {
        let r = match self {
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            Codec::MessagePack => rmp_serde::from_slice(bytes).map_err(|e| e.to_string()),
        };
        r.map_err(|reason| self.error(kind, "decode", reason))
    }

    fn error(self, kind: &str, op: &'static str, reason: String) -> CodecError {
        CodecError {
            kind: kind.to_owned(),
            op,
            codec: self,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Args {
        to: String,
        n: u32,
        tags: Vec<String>,
        cc: Option<String>,
    }

    proptest! {
        #[test]
        fn both_codecs_round_trip(to in ".*", n: u32, tags in proptest::collection::vec(".*", 0..4), cc in proptest::option::of(".*")) {
            let a = Args { to, n, tags, cc };
            for codec in [Codec::Json, Codec::MessagePack] {
                let bytes = codec.encode("k", &a).unwrap();
                prop_assert_eq!(codec.decode::<Args>("k", &bytes).unwrap(), a.clone());
            }
        }
    }

    #[test]
    fn a_payload_that_does_not_decode_names_the_kind_and_the_codec() {
        let e = Codec::Json
            .decode::<Args>("email.send", b"{\"to\": 3}")
            .unwrap_err();
        assert_eq!(
            (e.kind.as_str(), e.op, e.codec),
            ("email.send", "decode", Codec::Json)
        );
        assert!(
            e.to_string()
                .starts_with("email.send: cannot decode with Json: "),
            "{e}"
        );
        let e = Codec::MessagePack
            .decode::<Args>("email.send", b"\xc1")
            .unwrap_err();
        assert_eq!(e.codec, Codec::MessagePack);
    }

    #[test]
    fn messagepack_is_smaller_than_json() {
        let a = Args {
            to: "a@example.com".into(),
            n: 70_000,
            tags: vec!["x".into(); 4],
            cc: None,
        };
        let json = Codec::Json.encode("k", &a).unwrap();
        let mp = Codec::MessagePack.encode("k", &a).unwrap();
        assert!(mp.len() < json.len(), "{} vs {}", mp.len(), json.len());
    }
}
