//! Bad input gets a typed error and writes nothing — checked at the client and,
//! bypassing the client, at the Lua functions themselves.

mod common;

use common::*;
use ff_engine::core::contract::execution::{self as ex, CreateArgs, Lease};
use ff_engine::core::contract::{ok_fields, Call, CallError};
use ff_engine::core::keys::IdempotencyKey;
use ff_engine::core::retry::RetryPolicy;
use ff_engine::core::{ExecutionId, FfError, Lane, LeaseId, ParseError};
use ff_engine::store::Store;
use ff_engine::{Error, ExecutionSpec};
use ff_tests::TestRedis;
use std::time::Duration;

const YEAR: Duration = Duration::from_secs(366 * 24 * 3600);

fn base_args() -> CreateArgs {
    create_args(3, 77)
}

/// Replace ARGV[i] (0-based) of a call.
fn with_arg(mut call: Call, i: usize, v: &[u8]) -> Call {
    call.args[i] = v.to_vec();
    call
}

async fn rejected(store: &dyn Store, call: &Call) -> FfError {
    let reply = store
        .fcall(call)
        .await
        .expect("the call reaches the server");
    match ok_fields(call.function, &reply) {
        Err(CallError::Rejected(e)) => e,
        Err(other) => panic!("{}: expected a refusal, got {other:?}", call.function),
        Ok(_) => panic!("{}: expected a refusal, the call succeeded", call.function),
    }
}

#[tokio::test]
async fn client_side_validation_gives_typed_errors_and_sends_nothing() {
    let redis = TestRedis::standalone();
    let store = store(&redis.url()).await;
    let c = client(&redis.url()).await;
    let keys_before = all_keys(&*store).await;

    let cases: Vec<(ExecutionSpec, &str)> = vec![
        (ExecutionSpec::new("bad kind!"), "kind"),
        (ExecutionSpec::new("k").lane("has space"), "lane"),
        (ExecutionSpec::new("k").lane("{fp:1}"), "lane"),
        (ExecutionSpec::new("k").namespace(""), "namespace"),
        (ExecutionSpec::new("k").delay(YEAR), "delay"),
        (
            ExecutionSpec::new("k").attempt_timeout(Duration::ZERO),
            "attempt_timeout",
        ),
        (ExecutionSpec::new("k").deadline(YEAR * 10), "deadline"),
        (ExecutionSpec::new("k").priority(1001), "priority"),
        (
            ExecutionSpec::new("k").retry(RetryPolicy::exponential(3, 10, 5)),
            "retry",
        ),
        (
            ExecutionSpec::new("k").idempotency_key("has space", Duration::from_secs(1)),
            "idempotency",
        ),
        (ExecutionSpec::new("k").tag("bad:tag", "v"), "tag"),
        (
            ExecutionSpec::new("k").tag("t", "v".repeat(300)),
            "tag value",
        ),
        (
            ExecutionSpec::new("k").payload(vec![0u8; 1024 * 1024 + 1]),
            "payload",
        ),
    ];
    for (spec, what) in cases {
        let err = c.create(spec).await.expect_err(what);
        assert!(
            matches!(
                err,
                Error::Invalid { .. }
                    | Error::Parse(_)
                    | Error::Rejected(FfError::PayloadTooLarge { .. })
            ),
            "{what}: {err:?}"
        );
    }
    let err = c
        .create(ExecutionSpec::new("k").lane("nolane"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Rejected(FfError::UnknownLane(ref l)) if l == "nolane"),
        "{err:?}"
    );
    assert_eq!(
        all_keys(&*store).await,
        keys_before,
        "a refused create wrote something"
    );

    // Registering the lane makes it usable.
    c.register_lane(&Lane::new("nolane").unwrap())
        .await
        .unwrap();
    c.create(ExecutionSpec::new("k").lane("nolane"))
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_ids_are_typed_errors() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    for bad in [
        "",
        "abc",
        "{fp:1}:xyz",
        "{fp:01}:00000000000000000000000000000000",
        "{fp:1}:0000000000000000000000000000000G",
        "{fp:99999999}:00000000000000000000000000000000",
    ] {
        assert!(
            matches!(ExecutionId::parse(bad), Err(ParseError::Malformed { .. })),
            "{bad:?}"
        );
    }
    assert!(LeaseId::parse("not-hex").is_err());
    // Outside this deployment's partitions.
    let err = c.get(&ExecutionId::new(999, 1)).await.unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    // Well-formed but unknown.
    let err = c.get(&ExecutionId::new(4, 1)).await.unwrap_err();
    assert!(matches!(err, Error::Rejected(FfError::NotFound)), "{err:?}");
    let err = c.cancel(&ExecutionId::new(4, 1), "x").await.unwrap_err();
    assert!(matches!(err, Error::Rejected(FfError::NotFound)), "{err:?}");
    let lease = Lease {
        execution: ExecutionId::new(4, 1),
        id: LeaseId::from_u128(1),
        epoch: 1,
    };
    assert!(matches!(
        c.complete(&lease, b"").await.unwrap_err(),
        Error::Rejected(FfError::NotFound)
    ));
    // Out-of-range durations are refused before sending.
    assert!(matches!(
        c.renew(&lease, Duration::from_millis(1)).await.unwrap_err(),
        Error::Invalid { .. }
    ));
    let (lane, w, i) = worker();
    assert!(matches!(
        c.claim(&lane, &w, &i, Duration::from_secs(48 * 3600), 1)
            .await
            .unwrap_err(),
        Error::Invalid { .. }
    ));
}

#[tokio::test]
async fn lua_validates_every_argument_before_writing() {
    let redis = TestRedis::standalone();
    let store = store(&redis.url()).await;
    let _c = client(&redis.url()).await;
    let keys_before = all_keys(&*store).await;
    let good = ex::create(&base_args());
    // ARGV positions: 0 eid, 1 ns, 2 lane, 3 kind, 4 priority, 5 payload, 6 delay,
    // 7 attempt timeout, 8 deadline, 9 retry, 10 max reclaims, 11 retention, 12 idem ttl, 13 ntags.
    let bad: Vec<(usize, Vec<u8>)> = vec![
        (0, b"{fp:4}:00000000000000000000000000000001".to_vec()), // id of another partition than KEYS[1]
        (1, b"bad ns".to_vec()),
        (2, b"".to_vec()),
        (3, b"k{".to_vec()),
        (4, b"abc".to_vec()),
        (4, b"1001".to_vec()),
        (4, b"1.5".to_vec()),
        (5, vec![b'x'; 1024 * 1024 + 1]),
        (6, b"-5".to_vec()),
        (7, b"99999999999999".to_vec()),
        (8, b"-1".to_vec()),
        (9, b"3:z:1".to_vec()),
        (9, b"3:e:100:10".to_vec()),
        (9, b"3:e:10:100:half".to_vec()), // a jitter it does not know
        (9, b"3:f:10:full:full".to_vec()),
        (9, b"3:f:full".to_vec()),
        (10, b"-1".to_vec()),
        (11, b"x".to_vec()),
        (12, b"5".to_vec()), // a TTL without a record key
        (13, b"1".to_vec()), // one tag announced, none given
    ];
    for (i, v) in bad {
        let call = with_arg(good.clone(), i, &v);
        let e = rejected(&*store, &call).await;
        assert!(
            matches!(
                e,
                FfError::InvalidArgument { .. } | FfError::PayloadTooLarge { .. }
            ),
            "ARGV[{i}]: {e:?}"
        );
    }
    // KEYS[1] that does not match the id.
    let mut call = good.clone();
    call.keys[0] = "ff:exec:{fp:3}:ffffffffffffffffffffffffffffffff".into();
    assert!(matches!(
        rejected(&*store, &call).await,
        FfError::InvalidArgument { .. }
    ));
    // An idempotency record key from another partition.
    let mut args = base_args();
    args.idempotency = Some((IdempotencyKey::new("k1").unwrap(), 1000));
    let mut call = ex::create(&args);
    call.keys[1] = "ff:idem:{fp:9}:default:k1".into();
    assert!(matches!(
        rejected(&*store, &call).await,
        FfError::InvalidArgument { .. }
    ));
    // Fenced calls with malformed leases, claims with bad counts.
    let lease = Lease {
        execution: ExecutionId::new(3, 77),
        id: LeaseId::from_u128(1),
        epoch: 1,
    };
    assert!(matches!(
        rejected(&*store, &with_arg(ex::complete(&lease, b""), 1, b"zz")).await,
        FfError::InvalidArgument { .. }
    ));
    assert!(matches!(
        rejected(&*store, &with_arg(ex::complete(&lease, b""), 2, b"0")).await,
        FfError::InvalidArgument { .. }
    ));
    assert!(matches!(
        rejected(&*store, &with_arg(ex::fail(&lease, "e", true), 4, b"2")).await,
        FfError::InvalidArgument { .. }
    ));
    assert!(matches!(
        rejected(&*store, &with_arg(ex::renew(&lease, 1000), 3, b"5")).await,
        FfError::InvalidArgument { .. }
    ));
    assert_eq!(
        all_keys(&*store).await,
        keys_before,
        "a refused call wrote something"
    );

    // The untouched call succeeds: the refusals were about the bad argument.
    let reply = store.fcall(&good).await.unwrap();
    assert!(ex::decode_create(&reply).unwrap().created);
}
